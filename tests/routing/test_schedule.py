"""Scheduling algorithms and key rotation, with seeded randomness and exact counts."""

from __future__ import annotations

import random
from collections import Counter

from unigate.config.compile import Channel
from unigate.routing.candidates import Candidate
from unigate.routing.schedule import KeyRing, Scheduler


def cand(name: str, weight: int | None = None) -> Candidate:
    channel = Channel(name=name, index=0, engine="openai", base_url="http://x/v1", keys=(), models={"m": "m"})
    return Candidate(channel, "m", "m", weight)


A, B, C = cand("A", 3), cand("B", 1), cand("C")


def firsts(
    s: Scheduler, algorithm: str, found: list[Candidate], n: int, scope: tuple[str, str] = ("k", "m")
) -> list[str]:
    return [s.order(algorithm, scope, found)[0].channel.name for _ in range(n)]


def test_fixed_priority_keeps_rule_order() -> None:
    s = Scheduler(random.Random(1))
    assert [c.channel.name for c in s.order("fixed_priority", ("k", "m"), [C, A, B])] == ["C", "A", "B"]
    assert firsts(s, "fixed_priority", [C, A, B], 5) == ["C"] * 5


def test_round_robin_rotates_per_key_and_model() -> None:
    s = Scheduler()
    assert firsts(s, "round_robin", [A, B, C], 4) == ["A", "B", "C", "A"]
    # another key's traffic does not shift this key's order
    assert firsts(s, "round_robin", [A, B, C], 1, scope=("other", "m")) == ["A"]
    assert firsts(s, "round_robin", [A, B, C], 1) == ["B"]
    assert [c.channel.name for c in s.order("round_robin", ("k", "m"), [A, B, C])] == ["C", "A", "B"]


def test_smooth_weighted_round_robin_is_exact_over_every_window() -> None:
    s = Scheduler()
    seq = firsts(s, "weighted_round_robin", [A, B], 40)
    assert seq[:8] == ["A", "A", "B", "A", "A", "A", "B", "A"]  # nginx smooth WRR; ties → earlier rule
    for start in range(len(seq) - 4):
        assert Counter(seq[start : start + 4]) == {"A": 3, "B": 1}


def test_weighted_five_two_one_full_cycles() -> None:
    x, y, z = cand("X", 5), cand("Y", 2), cand("Z", 1)
    seq = firsts(Scheduler(), "weighted_round_robin", [x, y, z], 8 * 25)
    for cycle in range(25):
        assert Counter(seq[cycle * 8 : cycle * 8 + 8]) == {"X": 5, "Y": 2, "Z": 1}


def test_unweighted_channels_are_fallbacks_not_dropped() -> None:
    order = Scheduler().order("weighted_round_robin", ("k", "m"), [C, A, B])
    assert [c.channel.name for c in order] == ["A", "B", "C"]
    order = Scheduler(random.Random(3)).order("lottery", ("k", "m"), [C, A, B])
    assert order[-1].channel.name == "C" and len(order) == 3


def test_lottery_follows_weights_within_a_statistical_bound() -> None:
    seq = firsts(Scheduler(random.Random(42)), "lottery", [A, B], 4000)
    share = seq.count("A") / len(seq)
    # Binomial(4000, 0.75): sd ≈ 0.0068; 5 sd either side.
    assert 0.716 < share < 0.784


def test_random_is_a_uniform_shuffle() -> None:
    s = Scheduler(random.Random(7))
    counts = Counter(firsts(s, "random", [A, B, C], 3000))
    assert set(counts) == {"A", "B", "C"}
    assert all(850 < n < 1150 for n in counts.values())  # ≈ 1000 each, sd ≈ 26


def test_keyring_round_robin_skips_unavailable_keys() -> None:
    ring = KeyRing(("k1", "k2", "k3"), "round_robin", random.Random(0))
    assert [ring.pick(lambda k: True) for _ in range(4)] == ["k1", "k2", "k3", "k1"]
    assert ring.pick(lambda k: k != "k2") == "k3"
    assert ring.pick(lambda k: True, exclude=frozenset({"k1"})) == "k2"
    assert ring.pick(lambda k: False) is None


def test_keyring_fixed_priority_and_random() -> None:
    ring = KeyRing(("k1", "k2"), "fixed_priority", random.Random(0))
    assert [ring.pick(lambda k: True) for _ in range(3)] == ["k1", "k1", "k1"]
    assert ring.pick(lambda k: k == "k2") == "k2"
    rnd = KeyRing(("k1", "k2", "k3"), "random", random.Random(5))
    picks = Counter(rnd.pick(lambda k: k != "k3") for _ in range(600))
    assert set(picks) == {"k1", "k2"} and all(n > 240 for n in picks.values())


def test_shared_ticks_reproduce_the_single_process_sequences() -> None:
    """Ticks drawn from a shared counter give exactly what one stateful scheduler gives."""
    x, y, z = cand("X", 5), cand("Y", 2), cand("Z", 1)
    for algorithm, found in (("weighted_round_robin", [x, y, z]), ("weighted_round_robin", [A, B, C])):
        local = firsts(Scheduler(), algorithm, found, 50)
        shared = Scheduler()
        assert [shared.order(algorithm, ("k", "m"), found, tick)[0].channel.name for tick in range(50)] == local
    local_rr = [s.order("round_robin", ("k", "m"), [A, B, C]) for s in [Scheduler()] for _ in range(5)]
    shared_rr = [Scheduler().order("round_robin", ("k", "m"), [A, B, C], tick) for tick in range(5)]
    assert shared_rr == local_rr
