"""What statistics cost the request path, in CPU time per request, measured finely enough to see 5 %.

Two gateways run side by side from the same code on the same core: one with its default SQLite
statistics (``DB_PATH``), one with ``DISABLE_DATABASE=true``. The load (wrk + the Node fake
upstream, on the other core) alternates between them in short slices, ABBA order, for many
cycles, so the machine's slow drift (a shared VM's neighbours, clock changes) hits both alike.

Accounting: a gateway's CPU time (its processes' CPU-time clocks, in ns) is read at
the start of each of its slices; one cycle's cost is the CPU between two consecutive slice starts
divided by the requests served in the slice. Work a gateway does after its slice — the statistics
writer's flush, timers, the WAL checkpoint thread — lands in its own cycle, not in the other's.

The statistics database can be prefilled (``--prefill``, rows spread over the past week, 20 client
keys) so that the inserts run against a table of realistic size: the cost of keeping the indexes
grows with the table, and a fresh file would hide that.

Several pairs (``--pairs``): each pair is two fresh gateway processes with the same
``PYTHONHASHSEED`` (string hashes decide dict probe lengths on the request path, so the two of a
pair must share it), and each pair gets a different one. Single runs of the same code disagreed
by more than their own intervals; pairs show that spread and the pooled interval includes it.

    .venv/bin/python bench/stats_cost.py                         # 24 cycles × 2 × 4 s, fresh file
    .venv/bin/python bench/stats_cost.py --together --cycles 8 --slice 5 --pairs 5
    .venv/bin/python bench/stats_cost.py --prefill 1000000       # against a 1 M-row table
    .venv/bin/python bench/stats_cost.py --mode stream
    .venv/bin/python bench/stats_cost.py --off-code ../variant --off-env DISABLE_DATABASE=false \
        --off-env DB_PATH=/tmp/variant.db                       # A/B: this code against ../variant's

Prints a markdown report: per-pair totals and added CPU per request, the pooled added CPU with a
95 % bootstrap interval (pairs, then cycles), and the throughput difference. Needs wrk, node and
taskset (as bench/run.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENT_KEY = "sk-bench-client"


@dataclass
class Target:
    name: str
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    cpu_us: list[float] = field(default_factory=list)  # CPU per cycle (µs), the whole process group
    main_us: list[float] = field(default_factory=list)  # CPU per cycle (µs), the gateway process alone
    requests: list[int] = field(default_factory=list)  # requests per slice
    ticks: tuple[int, int] = (0, 0)  # user, system clock ticks over the measured cycles
    seconds: list[float] = field(default_factory=list)  # wall time per slice


def group_members(pgid: int) -> Iterator[tuple[int, list[str]]]:
    """Each live process of the process group: its pid and the fields of ``/proc/<pid>/stat``
    after the command (``state`` is the first)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            rest = stat.read_text().rsplit(") ", 1)[1].split()
            if int(rest[2]) == pgid:
                yield int(stat.parent.name), rest
        except (OSError, IndexError, ValueError):
            continue


def group_cpu_us(pgid: int) -> float:
    """CPU time of every live process in the process group, in µs, read from each process's
    CPU-time clock (``clock_getcpuclockid``'s clock, made by hand: ``(~pid << 3) | 2`` is Linux's
    ``CPUCLOCK_SCHED`` clock of a whole process, every thread and threads that have ended
    included) in nanoseconds. Not ``utime + stime`` from ``/proc/<pid>/stat``: those count clock
    ticks (10 ms here), a 1 % step over a one-second slice."""
    total = 0
    for pid, _ in group_members(pgid):
        with contextlib.suppress(OSError):  # it ended meanwhile
            total += time.clock_gettime_ns(((~pid) << 3) | 2)
    return total / 1000


def process_cpu_us(pid: int) -> float:
    """CPU time of one process (see :func:`group_cpu_us`), in µs."""
    return time.clock_gettime_ns(((~pid) << 3) | 2) / 1000


WRITER_MODULE = "unigate.stats.sqlite_process"


def place_writer(pgid: int, cpu: str) -> int:
    """Move the gateway's statistics writer process (see unigate/stats/sqlite_process.py) to
    ``cpu``, as the operating system would run it on an idle core; its pid. The gateway itself
    stays pinned to its core, so the request path's CPU is measured alone."""
    for pid, _ in group_members(pgid):
        with contextlib.suppress(OSError):
            if WRITER_MODULE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.sched_setaffinity(pid, {int(c) for c in cpu.split(",")})
                return pid
    raise LookupError(f"no statistics writer process in process group {pgid} (UNIGATE_STATS_PROCESS=false?)")


def group_ticks(pgid: int) -> tuple[int, int]:
    """User and system CPU of every live process in the process group, in clock ticks
    (``/proc/<pid>/stat`` ``utime`` and ``stime``): too coarse for a slice, fine over a run, and
    the only split of where the time went (the kernel's share: socket and file writes)."""
    user = system = 0
    for _, rest in group_members(pgid):
        user, system = user + int(rest[11]), system + int(rest[12])
    return user, system


def wait_ready(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gateway on port {port} did not become ready")


def start_wrk(port: int, seconds: int, mode: str, connections: int, load_cpu: str) -> subprocess.Popen[str]:
    env = dict(os.environ, BENCH_STREAM="1" if mode == "stream" else "0", BENCH_KEY=CLIENT_KEY)
    command = ["taskset", "-c", load_cpu, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s"]
    command += ["-s", str(ROOT / "bench/chat.lua"), f"http://127.0.0.1:{port}"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish_wrk(proc: subprocess.Popen[str]) -> int:
    """Requests wrk completed (it exits with an error, or any request failed: the run stops)."""
    out, _ = proc.communicate()
    result = next((ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT")), None)
    if proc.returncode or result is None:
        raise SystemExit(f"wrk failed: {out[-400:]}")
    fields = dict(re.findall(r"(\w+)=(\S+)", result))
    errors = sum(int(v) for k, v in fields.items() if k.startswith("errors_"))
    if errors:
        raise SystemExit(f"wrk saw {errors} errors: {fields}")
    return int(fields["requests"])


def run_wrk(port: int, seconds: int, mode: str, connections: int, load_cpu: str) -> int:
    return finish_wrk(start_wrk(port, seconds, mode, connections, load_cpu))


def prefill(db: Path, rows: int) -> None:
    """Create the schema (the gateway's own migrations) and insert ``rows`` rows spread over the
    past week, 20 client keys and 3 channels, with time-ordered ids like the gateway's own. The
    rows are variations of one row made by the gateway's own ``request_row``."""
    sys.path.insert(0, str(ROOT))
    from stats_index_growth import template as row_template

    from unigate.stats.rows import REQUEST_COLUMNS, sqlite_stamp
    from unigate.stats.store import StatsStore

    async def migrate() -> None:
        store = StatsStore(f"sqlite+aiosqlite:///{db}")
        await store.open()
        await store.close()

    asyncio.run(migrate())
    if not rows:
        return
    template = row_template()  # the gateway's own row builder, one realistic request
    at = {name: REQUEST_COLUMNS.index(name) for name in ("request_id", "timestamp", "client_key", "channel")}
    insert = f"INSERT INTO request_stats ({', '.join(REQUEST_COLUMNS)}) VALUES ({', '.join('?' * len(template))})"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    start = datetime.now(UTC) - timedelta(days=7)
    step = timedelta(days=7) / rows
    rng = random.Random(5)
    batch: list[tuple[object, ...]] = []
    for i in range(rows):
        when = start + step * i
        row = list(template)
        row[at["request_id"]] = f"{int(when.timestamp() * 1000):012x}{rng.getrandbits(48):012x}"
        row[at["timestamp"]] = sqlite_stamp(when)
        row[at["client_key"]] = f"team-{i % 20}"
        row[at["channel"]] = ("openai", "azure", "anthropic")[i % 3]
        batch.append(tuple(row))
        if len(batch) == 50_000 or i == rows - 1:
            conn.execute("BEGIN")
            conn.executemany(insert, batch)
            conn.execute("COMMIT")
            batch.clear()
    conn.execute(  # the time windows' blocks (migration 0004), as the gateway's own writes add them
        "INSERT INTO request_stats_blocks (first_id, last_id, min_timestamp, max_timestamp)"
        " SELECT min(id), max(id), min(timestamp), max(timestamp) FROM request_stats GROUP BY id / 4096 ORDER BY 1"
    )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


Picks = list[tuple[int, list[int]]]
"""Cycles to total over: (pair index, that pair's cycle indexes) entries."""


def added_cpu(pairs: list[tuple[Target, Target]], idx: Picks, clock: str = "cpu_us") -> float:
    """Added CPU per request in %, over the cycles ``idx`` picks (by default every process of each
    gateway; ``clock="main_us"``: each gateway's own process)."""
    on_cpu = sum(getattr(pairs[p][0], clock)[i] for p, cycles in idx for i in cycles)
    on_req = sum(pairs[p][0].requests[i] for p, cycles in idx for i in cycles)
    off_cpu = sum(getattr(pairs[p][1], clock)[i] for p, cycles in idx for i in cycles)
    off_req = sum(pairs[p][1].requests[i] for p, cycles in idx for i in cycles)
    return (on_cpu / on_req / (off_cpu / off_req) - 1) * 100


def added_main_cpu(pairs: list[tuple[Target, Target]], idx: Picks) -> float:
    """As :func:`added_cpu`, counting each gateway's own process only (not its writer process)."""
    return added_cpu(pairs, idx, "main_us")


def lost_throughput(pairs: list[tuple[Target, Target]], idx: Picks) -> float:
    """Throughput lost in %, over the cycles ``idx`` picks: requests over wall time of the slices,
    statistics on against off."""
    on_req = sum(pairs[p][0].requests[i] for p, cycles in idx for i in cycles)
    on_s = sum(pairs[p][0].seconds[i] for p, cycles in idx for i in cycles)
    off_req = sum(pairs[p][1].requests[i] for p, cycles in idx for i in cycles)
    off_s = sum(pairs[p][1].seconds[i] for p, cycles in idx for i in cycles)
    return (1 - on_req / on_s / (off_req / off_s)) * 100


def bootstrap(
    pairs: list[tuple[Target, Target]],
    metric: Callable[[list[tuple[Target, Target]], Picks], float] = added_cpu,
    samples: int = 4000,
) -> tuple[float, float, float]:
    """``metric`` (on vs off, totals over every cycle of every pair) with a 95 % bootstrap
    interval. With several pairs it resamples pairs, then cycles within each: fresh processes
    differ (hash seed, memory layout) by more than one run's cycles do, and an interval over
    cycles alone would hide that."""
    rng = random.Random(1)
    whole = [(p, list(range(len(on.cpu_us)))) for p, (on, _) in enumerate(pairs)]

    def draw() -> float:
        picked = [rng.randrange(len(pairs)) for _ in pairs] if len(pairs) > 1 else [0]
        return metric(
            pairs, [(p, [rng.randrange(len(pairs[p][0].cpu_us)) for _ in pairs[p][0].cpu_us]) for p in picked]
        )

    draws = sorted(draw() for _ in range(samples))
    return metric(pairs, whole), draws[int(samples * 0.025)], draws[int(samples * 0.975)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=24)
    ap.add_argument("--slice", type=int, default=4, help="seconds of load per target per cycle")
    ap.add_argument("--mode", choices=("nonstream", "stream"), default="nonstream")
    ap.add_argument("--together", action="store_true", help="load both gateways at once instead of in turn")
    ap.add_argument("--prefill", type=int, default=0, help="rows in the statistics table before the run")
    ap.add_argument("--pairs", type=int, default=1, help="fresh gateway pairs, one after another")
    ap.add_argument("--seed", type=int, default=None, help="PYTHONHASHSEED of the first pair (then +1 …)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--load-cpu", default="0")
    ap.add_argument("--gateway-cpu", default="1")
    ap.add_argument("--python", default=str(ROOT / ".venv/bin/python"))
    ap.add_argument(
        "--writer-cpu",
        help="move the statistics writer processes to this CPU (the 'on' gateway's, and the 'off' one's if it has "
        "one; default: they stay on the gateway's core)",
    )
    ap.add_argument("--on-env", action="append", default=[], metavar="KEY=VALUE", help="more env for stats on")
    ap.add_argument("--off-env", action="append", default=[], metavar="KEY=VALUE", help="more env for stats off")
    ap.add_argument(
        "--off-code",
        metavar="DIR",
        help="run the 'off' gateway from the unigate package in DIR (a git worktree of another commit): A/B "
        "between two versions of the code; add --off-env DISABLE_DATABASE=false --off-env DB_PATH=… so both write",
    )
    args = ap.parse_args()
    for tool in ("wrk", "node", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is required")
    first = args.seed if args.seed is not None else random.randrange(1, 2**31)
    pairs: list[tuple[Target, Target]] = []
    stored = served = 0
    for index in range(args.pairs):
        on, off, rows, counted = run_pair(args, first + index)
        pairs.append((on, off))
        stored, served = stored + rows, served + counted
        one, low, high = bootstrap([(on, off)])
        print(
            f"[stats_cost] pair {index + 1}/{args.pairs} (PYTHONHASHSEED={first + index}): {one:+.1f} % "
            f"({low:+.1f} … {high:+.1f})",
            file=sys.stderr,
        )
    report(args, pairs, first, stored, served)


def run_pair(args: argparse.Namespace, seed: int) -> tuple[Target, Target, int, int]:
    """One pair of fresh gateways (both with ``PYTHONHASHSEED=seed``: string hashes shape dict
    probes on the request path, so the two must not differ in it) through ``args.cycles`` cycles;
    returns them, the rows the run stored and the requests wrk counted with statistics on."""
    work = Path(tempfile.mkdtemp(prefix="unigate-stats-cost-"))
    upstream_port, on_port, off_port = 18190, 18191, 18192
    (work / "api.yaml").write_text(
        "providers:\n  - provider: bench\n"
        f"    base_url: http://127.0.0.1:{upstream_port}/v1\n    api: sk-bench-upstream\n    model: [gpt-4o]\n"
        f"api_keys:\n  - api: {CLIENT_KEY}\n    model: [all]\n"
    )
    db = work / "stats.db"
    t0 = time.monotonic()
    prefill(db, args.prefill)
    if args.prefill:
        print(f"[stats_cost] prefilled {args.prefill} rows in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    on_env = dict(e.split("=", 1) for e in args.on_env)
    off_env = dict(e.split("=", 1) for e in args.off_env)
    if args.off_code:  # ``-m`` puts the working directory first on sys.path; PYTHONSAFEPATH stops that
        off_env |= {"PYTHONSAFEPATH": "1", "PYTHONPATH": str(Path(args.off_code).resolve())}
    on = Target("statistics on (SQLite)", on_port, {"DB_PATH": str(db), **on_env})
    off = Target("statistics off", off_port, {"DISABLE_DATABASE": "true", **off_env})
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen(
                ["taskset", "-c", args.load_cpu, "node", str(ROOT / "bench/fake_upstream.js"), str(upstream_port)],
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        for t in (on, off):
            env = {**os.environ, "PYTHONHASHSEED": str(seed), **t.env}  # --on-env / --off-env may override
            env.pop("REDIS_URL", None)
            t.proc = subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    args.gateway_cpu,
                    args.python,
                    "-m",
                    "unigate",
                    "serve",
                    "--config",
                    str(work / "api.yaml"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(t.port),
                    "--workers",
                    "1",
                ],
                cwd=ROOT,
                env=env,
                stdout=(work / f"{t.port}.log").open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            procs.append(t.proc)
        warm_on = 0
        for t in (on, off):
            wait_ready(t.port)
            warm = run_wrk(t.port, 3, args.mode, args.connections, args.load_cpu)  # warm-up
            warm_on = warm if t is on else warm_on
        if args.writer_cpu is not None:  # every gateway that has a writer process (both, in an A/B)
            assert on.proc is not None and off.proc is not None
            place_writer(on.proc.pid, args.writer_cpu)
            with contextlib.suppress(LookupError):
                place_writer(off.proc.pid, args.writer_cpu)
        marks: dict[str, float] = {}
        first_ticks = {t.name: group_ticks(t.proc.pid) for t in (on, off) if t.proc is not None}
        for cycle in range(args.cycles):
            # --together: both under load at once, sharing the core, so the machine's noise hits
            # both at every instant; else alternate slices (ABBA)
            groups = [(on, off)] if args.together else [(on,), (off,)] if cycle % 2 == 0 else [(off,), (on,)]
            for group in groups:
                for t in group:
                    assert t.proc is not None
                    now, alone = group_cpu_us(t.proc.pid), process_cpu_us(t.proc.pid)
                    if t.name in marks:
                        t.cpu_us.append(now - marks[t.name])
                        t.main_us.append(alone - marks["main " + t.name])
                    marks[t.name], marks["main " + t.name] = now, alone
                started = time.monotonic()
                loads = [start_wrk(t.port, args.slice, args.mode, args.connections, args.load_cpu) for t in group]
                for t, load in zip(group, loads, strict=True):
                    t.requests.append(finish_wrk(load))
                    t.seconds.append(time.monotonic() - started)
            done = [f"{t.cpu_us[-1] / t.requests[-2]:.0f}" for t in (on, off) if len(t.cpu_us) and len(t.requests) > 1]
            print(f"[stats_cost] cycle {cycle + 1}/{args.cycles}: µs/request on, off {done}", file=sys.stderr)
        time.sleep(2.5)  # the last slice's records are flushed (1 s interval) before the final read
        for t in (on, off):
            assert t.proc is not None
            t.cpu_us.append(group_cpu_us(t.proc.pid) - marks[t.name])
            t.main_us.append(process_cpu_us(t.proc.pid) - marks["main " + t.name])
            user, system = group_ticks(t.proc.pid)
            t.ticks = (user - first_ticks[t.name][0], system - first_ticks[t.name][1])
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
    stored = sqlite3.connect(db).execute("SELECT count(*) FROM request_stats").fetchone()[0]
    served = sum(on.requests) + warm_on
    shutil.rmtree(work)
    return on, off, stored - args.prefill, served


def report(args: argparse.Namespace, pairs: list[tuple[Target, Target]], seed: int, stored: int, served: int) -> None:
    print(
        f"`bench/stats_cost.py --mode {args.mode} --prefill {args.prefill} --cycles {args.cycles} "
        f"--slice {args.slice} --pairs {args.pairs}{' --together' if args.together else ''}"
        f"{' --off-code …' if args.off_code else ''}{' --writer-cpu ' + args.writer_cpu if args.writer_cpu else ''}` "
        f"(PYTHONHASHSEED {seed}…{seed + len(pairs) - 1}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n"
    )
    print("| pair | gateway | requests | CPU µs/request (total) | median of cycles | req/s (median slice) | added |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for index, (on, off) in enumerate(pairs):
        one, low, high = bootstrap([(on, off)])
        for t in (on, off):
            per = [c / r for c, r in zip(t.cpu_us, t.requests, strict=True)]
            rps = [r / s for r, s in zip(t.requests, t.seconds, strict=True)]
            cell = f"{one:+.1f} % ({low:+.1f} … {high:+.1f})" if t is on else ""
            print(
                f"| {index + 1} | {t.name} | {sum(t.requests)} | {sum(t.cpu_us) / sum(t.requests):.0f} "
                f"| {statistics.median(per):.0f} | {statistics.median(rps):.0f} | {cell} |"
            )
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    for label, at in (("user", 0), ("system (kernel)", 1)):
        per = [sum(p[k].ticks[at] for p in pairs) * tick_us / sum(sum(p[k].requests) for p in pairs) for k in (0, 1)]
        print(f"\n{label} CPU µs/request: on {per[0]:.1f}, off {per[1]:.1f} ({per[0] - per[1]:+.1f})", end="")
    print()
    added, low, high = bootstrap(pairs)
    lost, lost_low, lost_high = bootstrap(pairs, lost_throughput)
    alone, alone_low, alone_high = bootstrap(pairs, added_main_cpu)
    on_all = sum(sum(p[0].cpu_us) for p in pairs) / sum(sum(p[0].requests) for p in pairs)
    on_main = sum(sum(p[0].main_us) for p in pairs) / sum(sum(p[0].requests) for p in pairs)
    print(
        f"\nThe gateway process alone (the request path's core): **{alone:+.1f} %** CPU per request "
        f"({alone_low:+.1f} … {alone_high:+.1f} %); its other processes (the statistics writer) "
        f"{on_all - on_main:.1f} µs/request{' on CPU ' + args.writer_cpu if args.writer_cpu else ''}."
    )
    print(
        f"\nStatistics add **{added:+.1f} %** CPU per request over all pairs (95 % bootstrap interval "
        f"{low:+.1f} … {high:+.1f} %, resampling pairs and then cycles); throughput **{lost:+.1f} %** lower "
        f"({lost_low:+.1f} … {lost_high:+.1f} %, the same way). Rows stored: {stored}; requests wrk counted "
        f"with statistics on: {served} (wrk does not count those in flight when a slice ends)."
    )


if __name__ == "__main__":
    main()
