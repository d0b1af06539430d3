"""Statistics end to end: the real gateway writing to a real SQLite file and a real PostgreSQL
database, read back through the admin API and scanned for secrets."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from tests.fakes.openai_upstream import Fail, FakeOpenAI, RawStream, Reply
from tests.fakes.openai_wire import Answer, dumps, stream_chunks
from tests.gateway.harness import RunningGateway, run_gateway
from tests.stats.conftest import _CANDIDATES
from tests.stats.secret_scan import assert_no_secret
from unigate.stats.store import StatsStore

ADMIN = "sk-admin-stats-canary-8d2f4a"
USER = "sk-user-stats-canary-1c9e7b"
UP_A = "sk-up-a-stats-canary-55aa01"
UP_B = "sk-up-b-stats-canary-66bb02"


def config(a: FakeOpenAI, b: FakeOpenAI) -> str:
    return f"""
providers:
  - provider: alpha
    base_url: {a.base_url}
    api: {UP_A}
    model: [gpt-4o]
  - provider: beta
    base_url: {b.base_url}
    api: {UP_B}
    model: [gpt-4o]
api_keys:
  - api: {ADMIN}
    role: admin
  - api: {USER}
    role: team-a
    model: [gpt-4o]
preferences:
  cooldown_period: 0
  model_price: {{gpt-4: "2.5,10", default: "1,1"}}
"""


async def _sql(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(statement)
    finally:
        await engine.dispose()


def _postgres() -> str:
    problems = []
    for url in _CANDIDATES:
        try:
            asyncio.run(_sql(url, "SELECT 1"))
            return url
        except Exception as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
    reason = "PostgreSQL is not reachable on 127.0.0.1:5432: " + "; ".join(problems)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (required when CI=true)")
    pytest.skip(reason)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """(gateway env, SQLAlchemy URL) of an empty database."""
    if request.param == "sqlite":
        path = tmp_path / "stats.db"
        yield {"DISABLE_DATABASE": "false", "DB_PATH": str(path)}, f"sqlite+aiosqlite:///{path}"
        return
    base = _postgres()
    name = f"unigate_e2e_{uuid.uuid4().hex[:10]}"
    asyncio.run(_sql(base, f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        yield {"DISABLE_DATABASE": "false", "DATABASE_URL": url}, url
    finally:
        asyncio.run(_sql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def wait_until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def records(gw: RunningGateway, n: int) -> list[dict[str, Any]]:
    def fetch() -> list[dict[str, Any]] | None:
        resp = httpx.get(gw.base_url + "/stats/requests", headers={"authorization": f"Bearer {ADMIN}"})
        rows: list[dict[str, Any]] = resp.json()["data"]
        return rows if len(rows) >= n else None

    rows = wait_until(fetch)
    assert rows is not None, f"fewer than {n} records were written"
    return sorted(rows, key=lambda r: r["timestamp"])


def test_records_for_success_retry_failure_and_stream(database: tuple[dict[str, str], str]) -> None:
    env, url = database
    with FakeOpenAI(api_key=UP_A) as a, FakeOpenAI(api_key=UP_B) as b, run_gateway(config(a, b), env=env) as gw:
        user = gw.client(USER)
        a.script(Reply(text="one", usage=(11, 3)))
        user.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "q1"}])
        a.script(Fail(500))
        b.script(Reply(text="two", usage=(12, 4)))
        user.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "q2"}])
        a.script(Fail(400, message="bad temperature"))
        with pytest.raises(openai.BadRequestError):
            user.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "q3"}])
        a.script(Reply(text="three four", usage=(13, 5)))
        list(
            user.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "q4"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        rows = records(gw, 4)
        ok, retried, failed, streamed = rows[-4:]
        assert (ok["status"], ok["success"], ok["channel"], ok["prompt_tokens"], ok["completion_tokens"]) == (
            200,
            True,
            "alpha",
            11,
            3,
        )
        assert ok["client_key"] == "team-a" and ok["model"] == "gpt-4o" and not ok["tokens_estimated"]
        assert [x["outcome"] for x in ok["attempts"]] == ["ok"]
        assert ok["upstream_key"] and ok["upstream_key"].startswith("key-")
        assert retried["channel"] == "beta" and retried["prompt_tokens"] == 12
        assert [(x["channel"], x["outcome"], x["status"]) for x in retried["attempts"]] == [
            ("alpha", "UpstreamUnavailable", 500),
            ("beta", "ok", 200),
        ]
        assert (failed["status"], failed["success"], failed["error_class"]) == (400, False, "UpstreamRequestError")
        assert "bad temperature" in failed["error_message"]
        assert streamed["stream"] and streamed["completion_tokens"] == 5 and streamed["ttft_ms"] is not None
        assert streamed["latency_ms"] >= streamed["ttft_ms"]

        summary = httpx.get(gw.base_url + "/stats?hours=1", headers={"authorization": f"Bearer {ADMIN}"}).json()
        rates = {(r["provider"], r["model"]): r for r in summary["channel_model_success_rates"]}
        assert rates[("beta", "gpt-4o")]["success_rate"] == 1.0
        assert rates[("alpha", "gpt-4o")]["total_requests"] == 4
        assert summary["usage"]["prompt_tokens"] == 11 + 12 + 13
        forbidden = httpx.get(gw.base_url + "/stats", headers={"authorization": f"Bearer {USER}"})
        assert forbidden.status_code == 403
        assert httpx.get(gw.base_url + "/stats").status_code == 401
        bad = httpx.get(gw.base_url + "/stats/requests?limit=abc", headers={"authorization": f"Bearer {ADMIN}"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"

    async def scan() -> None:
        store = StatsStore(url)
        await store.open()
        try:
            await assert_no_secret(store, [ADMIN, USER, UP_A, UP_B])
        finally:
            await store.close()

    asyncio.run(scan())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _writer_processes(pgid: int) -> list[int]:
    """The statistics writer processes (unigate/stats/sqlite_process.py) in a process group."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(") ", 1)[1].split()[2]) != pgid:
                continue
            if b"unigate.stats.sqlite_process" in (stat.parent / "cmdline").read_bytes():
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.parametrize(
    ("whole_group", "workers"), [(False, 1), (True, 1), (True, 2)], ids=["gateway", "process-group", "two-workers"]
)
def test_sigterm_flushes_queued_records(tmp_path: Path, whole_group: bool, workers: int) -> None:
    """Records still queued (flush interval of an hour) are all written on SIGTERM. With
    ``whole_group`` the signal goes to the whole process group, as a service manager or Ctrl-C
    sends it, while the statistics writer process is running (two-row batches start it early): no
    record is lost, and no writer process outlives the gateway. (That the writer ignores the
    signal, rather than being replaced after it, is tests/stats/test_sqlite_process.py's.) With two
    workers, each has its own writer process, both appending to the one file."""
    db = tmp_path / "stats.db"
    with FakeOpenAI(api_key=UP_A) as a, FakeOpenAI(api_key=UP_B) as b:
        cfg = tmp_path / "api.yaml"
        cfg.write_text(config(a, b))
        port = _free_port()
        env = {**os.environ, "DB_PATH": str(db), "UNIGATE_STATS_FLUSH_INTERVAL": "3600"}
        env.pop("DISABLE_DATABASE", None)
        if whole_group:
            env["UNIGATE_STATS_BATCH"] = "2"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "unigate",
                "serve",
                "--config",
                str(cfg),
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--log-level",
                "warning",
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=whole_group,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            assert wait_until(lambda: _up(base)), "gateway did not start"
            client = openai.OpenAI(base_url=base + "/v1", api_key=USER, max_retries=0)
            for i in range(7):
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"m{i}"}])
            if whole_group:
                assert wait_until(lambda: bool(_writer_processes(proc.pid))), "no writer process started"
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                proc.send_signal(signal.SIGTERM)
            # uvicorn shuts down gracefully, then re-raises the signal: -SIGTERM is a clean exit.
            assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        finally:
            if proc.poll() is None:
                proc.kill()

    async def count() -> list[Any]:
        store = StatsStore(f"sqlite+aiosqlite:///{db}")
        try:
            return await store.requests(100)
        finally:
            await store.close()

    rows = asyncio.run(count())
    assert len(rows) == 7 and all(r["status"] == 200 for r in rows)
    if whole_group:
        assert wait_until(lambda: not _writer_processes(proc.pid)), "the writer process outlived the gateway"


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_costs_estimates_and_metrics(tmp_path: Path) -> None:
    env = {"DISABLE_DATABASE": "false", "DB_PATH": str(tmp_path / "stats.db")}
    with FakeOpenAI(api_key=UP_A) as a, FakeOpenAI(api_key=UP_B) as b, run_gateway(config(a, b), env=env) as gw:
        user = gw.client(USER)
        a.script(Reply(text="priced", usage=(1000, 2000)))
        user.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "p"}])
        # a stream without include_usage: the gateway asks the upstream for usage anyway → exact
        a.script(Reply(text="hello there general kenobi", usage=(30, 40)))
        list(user.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "s"}], stream=True))
        # an upstream that sends no usage even when asked → counted locally
        silent = [b"data: " + dumps(c) + b"\n\n" for c in stream_chunks(Answer("gpt-4o", "hi there"), False)]
        a.script(RawStream([*silent, b"data: [DONE]\n\n"]))
        list(user.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "s"}], stream=True))
        priced, exact, estimated = records(gw, 3)[-3:]
        # 'gpt-4' is the longest price key that prefixes 'gpt-4o': 2.5 $/M in, 10 $/M out
        assert priced["cost"] == pytest.approx(1000 * 2.5 / 1e6 + 2000 * 10 / 1e6)
        assert not priced["tokens_estimated"]
        assert (exact["prompt_tokens"], exact["completion_tokens"], exact["tokens_estimated"]) == (30, 40, False)
        assert estimated["tokens_estimated"] and estimated["completion_tokens"] > 0
        assert estimated["prompt_tokens"] > 0

        resp = httpx.get(gw.url + "/metrics", headers={"authorization": f"Bearer {ADMIN}"})
        assert resp.status_code == 200
        from prometheus_client.parser import text_string_to_metric_families

        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text)
            for s in family.samples
        }
        requests = {k: v for k, v in samples.items() if k[0] == "unigate_requests_total"}
        assert sum(requests.values()) == 3
        assert all(dict(labels)["key"] == "team-a" for _, labels in requests)
        assert ADMIN not in resp.text and USER not in resp.text and UP_A not in resp.text
        assert httpx.get(gw.url + "/metrics", headers={"authorization": f"Bearer {USER}"}).status_code == 403
        # the SQLite rows went through one writer process, visible to operators
        assert samples[("unigate_stats_writer_processes_started", ())] == 1
        health = httpx.get(gw.base_url + "/stats/health", headers={"authorization": f"Bearer {ADMIN}"}).json()
        process = health["stats_writer_process"]
        assert process["started"] == 1 and process["doubtful_already_stored"] == 0
        assert isinstance(process["pid"], int) and process["pid"] != os.getpid()


class ThreadedRelay:
    """``TcpRelay`` on its own event loop thread, for the synchronous gateway tests."""

    def __init__(self, host: str, port: int) -> None:
        import threading

        from tests.stats.tcp_relay import TcpRelay

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.relay = TcpRelay(host, port)
        self.port = asyncio.run_coroutine_threadsafe(self.relay.start(), self.loop).result(5)

    def call(self, fn: Callable[[], None]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.relay.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_database_dying_mid_run_never_fails_a_request() -> None:
    """PostgreSQL behind a relay that is cut while requests flow: every request succeeds, and
    the records queued during the outage are written once the database is reachable again."""
    base = _postgres()
    name = f"unigate_e2e_{uuid.uuid4().hex[:10]}"
    asyncio.run(_sql(base, f'CREATE DATABASE "{name}"'))
    relay = ThreadedRelay("127.0.0.1", 5432)
    try:
        url = base.rsplit("/", 1)[0].replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}") + "/" + name
        env = {"DISABLE_DATABASE": "false", "DATABASE_URL": url, "UNIGATE_STATS_FLUSH_INTERVAL": "0.05"}
        with FakeOpenAI(api_key=UP_A) as a, FakeOpenAI(api_key=UP_B) as b, run_gateway(config(a, b), env=env) as gw:
            user = gw.client(USER)
            user.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "before"}])
            records(gw, 1)
            relay.call(relay.relay.cut)
            for i in range(5):
                resp = user.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"d{i}"}])
                assert resp.choices[0].message.content == f"echo: d{i}"
            health = httpx.get(gw.base_url + "/stats/health", headers={"authorization": f"Bearer {ADMIN}"}).json()
            assert health["stats_queue"]["queued"] >= 1  # held in memory, not lost
            relay.call(relay.relay.restore)
            rows = records(gw, 6)
            assert {r["request_id"] for r in rows} and len(rows) == 6
    finally:
        relay.close()
        asyncio.run(_sql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
