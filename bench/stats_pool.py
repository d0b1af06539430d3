"""Pool several ``bench/stats_cost.py`` reports into one estimate, resampling whole pairs.

Each report's table gives, per pair, the CPU µs per request and the requests of both gateways;
their product is the pair's CPU total. The pooled added CPU is the ratio of the totals over every
pair (as ``stats_cost.py`` computes within one run) with a 95 % bootstrap interval over pairs:
fresh processes differ by more than one pair's cycles do (docs/performance.md), so pairs are the
unit. The µs in the tables are rounded to whole numbers: ±0.5 µs on each side, which moves a
pair by up to ~0.2 % at 500 µs a request and ~0.5 % at 200 µs.

    python3 bench/stats_pool.py run1.md run2.md …
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

Pair = tuple[float, int, float, int]
"""CPU µs and requests with statistics on, then off."""

_ROW = re.compile(r"\| (\d+) \| statistics (on|off)[^|]*\| (\d+) \| (\d+) \|")


def pairs_of(report: str) -> list[Pair]:
    """The pairs in one report's markdown table."""
    rows: dict[str, dict[str, tuple[int, int]]] = {}
    for line in report.splitlines():
        match = _ROW.match(line)
        if match:
            requests, per_request = int(match.group(3)), int(match.group(4))
            rows.setdefault(match.group(1), {})[match.group(2)] = (requests, per_request)
    return [
        (p["on"][0] * p["on"][1], p["on"][0], p["off"][0] * p["off"][1], p["off"][0])
        for p in rows.values()
        if "on" in p and "off" in p
    ]


def added(pairs: list[Pair]) -> float:
    """CPU per request added by statistics, in %, over ``pairs``' totals."""
    on = sum(p[0] for p in pairs) / sum(p[1] for p in pairs)
    off = sum(p[2] for p in pairs) / sum(p[3] for p in pairs)
    return (on / off - 1) * 100


def main(paths: list[str]) -> None:
    pairs = [pair for path in paths for pair in pairs_of(Path(path).read_text(encoding="utf-8"))]
    if not pairs:
        raise SystemExit("no pairs found")
    rng = random.Random(1)
    draws = sorted(added([rng.choice(pairs) for _ in pairs]) for _ in range(10_000))
    per_pair = ", ".join(f"{added([p]):.1f}" for p in pairs)
    mean_us = sum(p[0] / p[1] - p[2] / p[3] for p in pairs) / len(pairs)
    print(
        f"{len(pairs)} pairs: {added(pairs):+.1f} % ({draws[250]:+.1f} … {draws[9750]:+.1f}), "
        f"{mean_us:.0f} µs a request on average; per pair {per_pair}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
