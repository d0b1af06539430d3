"""The dashboard end to end: a real gateway with SQLite statistics, two fake channels and real
traffic through the ``openai`` SDK, opened in a real headless Chromium.

Checked: who may see the page (admin key in a header or the cookie; login page without data for
no key, 403 for a non-admin key), that the charts render *with* the data sent (SVG series with
path data, and pixels of the series colours in a screenshot), that the tables show the counts
sent, and that strings from the records (a model name and an upstream error message carrying
markup) are shown as text, never parsed or run.

``UNIGATE_UPDATE_SCREENSHOT=1`` runs one more test: a gateway whose database is seeded with an
hour of generated traffic (plus live requests), whose full-page screenshot goes to
``docs/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.browser import Browser, Page, chromium, decode_png
from tests.fakes.openai_upstream import Delay, Fail, FakeOpenAI, Reply
from tests.gateway.harness import RunningGateway, run_gateway
from tests.gateway.test_stats import wait_until
from unigate.stats.records import AttemptRecord, RequestRecord
from unigate.stats.store import StatsStore

ADMIN = "sk-admin-dash-canary-7f3a9c"
USER = "sk-user-dash-canary-2b8e41"
UP_A = "sk-up-a-dash-canary-11aa33"
UP_B = "sk-up-b-dash-canary-22bb44"
EVIL_MODEL = "<img src=x onerror=alert(1)>"
EVIL_MESSAGE = "<script>window.__pwned = 1</script><b>bad temperature</b>"
COOKIE = "unigate_admin"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"

# The browser tests may have to install Chromium first (apt-get, as CI does).
browser_timeout = pytest.mark.timeout(900)


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
    model: [gpt-4o, gpt-4o-mini]
api_keys:
  - api: {ADMIN}
    role: admin
  - api: {USER}
    role: team-a
    model: [gpt-4o, gpt-4o-mini]
preferences:
  model_price: {{gpt-4o: "2.5,10", gpt-4o-mini: "0.15,0.6"}}
"""


@dataclass
class Traffic:
    gw: RunningGateway
    channels: Counter[str]
    """Client requests per channel that answered last ("" for none)."""
    failed: Counter[str]
    models: Counter[str]
    keys: Counter[str]
    records: list[dict[str, Any]]


def _ask(client: openai.OpenAI, model: str) -> None:
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}])


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    db = tmp_path_factory.mktemp("dashboard") / "stats.db"
    env = {"DISABLE_DATABASE": "false", "DB_PATH": str(db), "UNIGATE_STATS_FLUSH_INTERVAL": "0.1"}
    with (
        FakeOpenAI(api_key=UP_A) as a,
        FakeOpenAI(models=("gpt-4o", "gpt-4o-mini"), api_key=UP_B) as b,
        run_gateway(config(a, b), env=env) as gw,
    ):
        user, admin = gw.client(USER), gw.client(ADMIN)
        channels: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        models: Counter[str] = Counter()
        keys: Counter[str] = Counter()

        def sent(channel: str, model: str, key: str, ok: bool = True) -> None:
            channels[channel] += 1
            models[model] += 1
            keys[key] += 1
            if not ok:
                failed[channel] += 1

        for i in range(3):  # alpha answers gpt-4o (fixed priority)
            a.script(Delay(0.02 * (i + 1), Reply(text="a", usage=(120 + 40 * i, 30))))
            _ask(user, "gpt-4o")
            sent("alpha", "gpt-4o", "team-a")
        for i in range(3):  # only beta serves gpt-4o-mini
            b.script(Delay(0.01 * (i + 1), Reply(text="b", usage=(300, 80 + 10 * i))))
            _ask(user, "gpt-4o-mini")
            sent("beta", "gpt-4o-mini", "team-a")
        b.script(Reply(text="b", usage=(50, 10)))
        _ask(admin, "gpt-4o-mini")
        sent("beta", "gpt-4o-mini", "admin")
        # A client error from the upstream: not retried, its (markup-laden) message recorded.
        a.script(Fail(400, message=EVIL_MESSAGE))
        with pytest.raises(openai.BadRequestError):
            _ask(user, "gpt-4o")
        sent("alpha", "gpt-4o", "team-a", ok=False)
        # A model name that is markup: refused before any channel, recorded with that name.
        with pytest.raises(openai.APIStatusError):
            _ask(user, EVIL_MODEL)
        sent("", EVIL_MODEL, "team-a", ok=False)
        # alpha fails with a 500 → retried on beta, and alpha cools down (default 300 s).
        a.script(Fail(500))
        b.script(Reply(text="b", usage=(200, 40)))
        _ask(user, "gpt-4o")
        sent("beta", "gpt-4o", "team-a")

        total = sum(channels.values())

        def fetch() -> list[dict[str, Any]] | None:
            resp = httpx.get(gw.base_url + "/stats/requests", headers={"authorization": f"Bearer {ADMIN}"})
            rows: list[dict[str, Any]] = resp.json()["data"]
            return rows if len(rows) >= total else None

        rows = wait_until(fetch)
        assert rows is not None, f"fewer than {total} records were written"
        yield Traffic(gw, channels, failed, models, keys, rows)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def open_page(browser: Browser, gw: RunningGateway, cookie: str | None) -> Page:
    page = browser.new_page(width=1280, height=1000)
    page.send("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
    page.clear_cookies()
    if cookie is not None:
        page.set_cookie(COOKIE, cookie, gw.url)
    page.navigate(gw.url + "/dashboard")
    return page


# ---- access -------------------------------------------------------------------------------------


def test_records_include_the_untrusted_model_name(traffic: Traffic) -> None:
    evil = [r for r in traffic.records if r["model"] == EVIL_MODEL]
    assert len(evil) == 1 and evil[0]["channel"] is None and not evil[0]["success"]
    assert any(EVIL_MESSAGE in (r["error_message"] or "") for r in traffic.records)


def test_without_a_key_the_login_page_has_no_data(traffic: Traffic) -> None:
    for cookies in ({}, {COOKIE: "sk-not-a-key"}):
        resp = httpx.get(traffic.gw.url + "/dashboard", cookies=cookies)
        assert resp.status_code == 401
        assert resp.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in resp.headers["content-security-policy"]
        assert resp.headers["cache-control"] == "no-store"
        body = resp.text
        assert '<form id="login"' in body and "/dashboard/static/login.js" in body
        for datum in ("alpha", "beta", "gpt-4o", "team-a", "dashboard.js"):
            assert datum not in body
    # The scripts and stylesheet are public (the login page needs them) and hold no data.
    js = httpx.get(traffic.gw.url + "/dashboard/static/login.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "SameSite=Strict" in js.text and "Path=/" in js.text
    cached = httpx.get(traffic.gw.url + "/dashboard/static/login.js", headers={"if-none-match": js.headers["etag"]})
    assert cached.status_code == 304
    for name in ("dashboard.html", "login.html", "../app.py", "nope.js"):
        assert httpx.get(traffic.gw.url + "/dashboard/static/" + name).status_code == 404


def test_a_non_admin_key_gets_403(traffic: Traffic) -> None:
    url = traffic.gw.url + "/dashboard"
    no: dict[str, str] = {}
    for headers, cookies in (
        (no, {COOKIE: USER}),
        ({"x-api-key": USER}, no),
        ({"authorization": f"Bearer {USER}"}, no),
    ):
        resp = httpx.get(url, headers=headers, cookies=cookies)
        assert resp.status_code == 403, (headers, cookies)
        assert "not an <strong>admin</strong> key" in resp.text and "alpha" not in resp.text
    # An admin key works from a header or from the cookie; a header wins over the cookie.
    for headers, cookies in (
        (no, {COOKIE: ADMIN}),
        ({"x-api-key": ADMIN}, no),
        ({"authorization": f"Bearer {ADMIN}"}, {COOKIE: USER}),
    ):
        resp = httpx.get(url, headers=headers, cookies=cookies)
        assert resp.status_code == 200, (headers, cookies)
        assert "/dashboard/static/dashboard.js" in resp.text
    mixed = httpx.get(url, headers={"authorization": f"Bearer {USER}"}, cookies={COOKIE: ADMIN})
    assert mixed.status_code == 403


# ---- in the browser -----------------------------------------------------------------------------

SNAPSHOT = """(() => {
  const text = (n) => n.textContent.trim();
  const rows = (id) => Array.from(document.querySelectorAll('#' + id + ' tbody tr'))
    .map((tr) => Array.from(tr.children).map(text));
  const charts = {};
  for (const fig of document.querySelectorAll('figure.chart')) {
    const svg = fig.querySelector('svg');
    const r = svg.getBoundingClientRect();
    charts[fig.id] = {
      rect: {x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height},
      label: svg.getAttribute('aria-label'),
      series: Array.from(svg.querySelectorAll('path.series')).map((p) => ({
        name: p.getAttribute('data-series'), d: p.getAttribute('d'),
        colour: p.getAttribute('fill') === 'none' ? p.getAttribute('stroke') : p.getAttribute('fill'),
      })),
    };
  }
  return {
    charts,
    cards: Object.fromEntries(Array.from(document.querySelectorAll('.card'))
      .map((c) => [text(c.querySelector('.label')), text(c.querySelector('.value'))])),
    channels: rows('table-channels'), health: rows('table-health'), models: rows('table-models'),
    keys: rows('table-keys'), failures: rows('table-failures'),
    markup: document.querySelectorAll('main img, main script, main b').length,
    pwned: typeof window.__pwned,
    problem: document.getElementById('problem').hidden ? null : text(document.getElementById('problem')),
  };
})()"""


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _pixels_near(counts: dict[tuple[int, int, int], int], rgb: tuple[int, int, int], tolerance: int = 10) -> int:
    return sum(n for c, n in counts.items() if max(abs(c[i] - rgb[i]) for i in range(3)) <= tolerance)


@browser_timeout
def test_dashboard_renders_the_traffic(traffic: Traffic, browser: Browser) -> None:
    page = open_page(browser, traffic.gw, ADMIN)
    page.wait_for("document.body.dataset.state === 'ready' && document.body.dataset.loads >= 1")
    snap = page.evaluate(SNAPSHOT)
    assert snap["problem"] is None
    assert page.errors() == []

    label = {"alpha": "alpha", "beta": "beta", "": "(no channel)"}
    # Requests: one stacked series per channel that answered, each with bars.
    requests = {s["name"]: s for s in snap["charts"]["chart-requests"]["series"]}
    assert set(requests) == {label[c] for c in traffic.channels}
    for name, s in requests.items():
        assert s["d"].count("Z") >= 1, name
    # Error rate, latency and cost: the two real channels have drawn series.
    for chart in ("chart-errors", "chart-latency", "chart-cost"):
        drawn = {s["name"]: s["d"] for s in snap["charts"][chart]["series"]}
        assert drawn.get("alpha") and drawn.get("beta"), (chart, drawn)
    assert "alpha 4 requests" in snap["charts"]["chart-requests"]["label"]

    # Totals per channel: requests and failures as sent.
    per_channel = {row[0]: row for row in snap["channels"]}
    assert set(per_channel) == {label[c] for c in traffic.channels}
    for channel, count in traffic.channels.items():
        row = per_channel[label[channel]]
        assert (row[1], row[2]) == (str(count), str(traffic.failed[channel])), row
    # Attempts: alpha was tried 5 times (3 ok, a 400, a 500), 2 of them failed.
    assert (per_channel["alpha"][4], per_channel["alpha"][5]) == ("5", "2")
    assert snap["cards"]["Requests"] == str(sum(traffic.channels.values()))
    assert snap["cards"]["Failed"] == str(sum(traffic.failed.values()))
    assert snap["cards"]["Cost"] != "$0"

    assert {r[0]: r[1] for r in snap["models"]} == {m: str(n) for m, n in traffic.models.items()}
    assert {r[0]: r[1] for r in snap["keys"]} == {k: str(n) for k, n in traffic.keys.items()}
    # alpha's 500 cooled it down; beta is fine.
    health = {r[0]: r for r in snap["health"]}
    assert "Cooling down" in health["alpha"][1] and health["alpha"][2] == "gpt-4o"
    assert health["beta"][1] == "● OK"
    # Below it, the statistics writer's queue and its SQLite writer process.
    queue = page.evaluate("document.getElementById('stats-queue').textContent")
    assert queue.startswith("Statistics writer: ") and re.search(r" · writer process \d+$", queue), queue

    # Failures with their reasons — and markup from the records shown as text, not run.
    failures = snap["failures"]
    assert len(failures) == sum(traffic.failed.values())
    upstream = next(r for r in failures if r[3] == "alpha")
    assert upstream[5] == "UpstreamRequestError" and upstream[4] == "400"
    assert EVIL_MESSAGE in upstream[6]
    refused = next(r for r in failures if r[2] == EVIL_MODEL)
    assert refused[3] == "—" and refused[5] in ("NotFound", "PermissionDenied")
    assert snap["markup"] == 0 and snap["pwned"] == "undefined"

    # Screenshot check: the charts really are painted, in the series colours.
    for chart, minimum in (("chart-requests", 150), ("chart-cost", 40), ("chart-latency", 10)):
        info = snap["charts"][chart]
        image = decode_png(page.screenshot(clip=info["rect"]))
        assert (image.width, image.height) == (round(info["rect"]["width"]), round(info["rect"]["height"]))
        counts = image.colours()
        background = max(counts, key=lambda c: counts[c])
        assert background == (255, 255, 255), (chart, background)  # the panel, decoded right
        for s in info["series"]:
            if s["name"] in ("alpha", "beta"):
                found = _pixels_near(counts, _hex(s["colour"]))
                assert found >= minimum, (chart, s["name"], s["colour"], found)


@browser_timeout
def test_range_selector_and_refresh(traffic: Traffic, browser: Browser) -> None:
    page = open_page(browser, traffic.gw, ADMIN)
    page.wait_for("document.body.dataset.state === 'ready'")
    loads = int(page.evaluate("document.body.dataset.loads"))
    page.evaluate("document.querySelector('[data-range=\"7d\"]').click()")
    page.wait_for(f"document.body.dataset.loads > {loads} && document.body.dataset.state === 'ready'")
    state = page.evaluate("""({
      pressed: Array.from(document.querySelectorAll('[data-range]'))
        .filter((b) => b.getAttribute('aria-pressed') === 'true').map((b) => b.dataset.range),
      hash: location.hash,
      updated: document.getElementById('updated').textContent,
      bars: document.querySelectorAll('#chart-requests path.series').length,
    })""")
    assert state["pressed"] == ["7d"] and state["hash"] == "#7d"
    assert "last 7 days" in state["updated"] and state["bars"] == len(traffic.channels)
    # Auto-refresh: a timer re-reads the statistics (bounded wait; the interval is 10 s).
    loads = int(page.evaluate("document.body.dataset.loads"))
    page.wait_for(f"document.body.dataset.loads > {loads}", timeout=15)
    assert page.errors() == []


@browser_timeout
def test_login_in_the_browser(traffic: Traffic, browser: Browser) -> None:
    page = open_page(browser, traffic.gw, None)
    page.wait_for("document.getElementById('login') !== null")
    assert page.evaluate("document.querySelectorAll('table, svg').length") == 0
    # A wrong key: back on the login page, told so.
    page.evaluate(
        f"document.getElementById('key').value = {json.dumps('sk-wrong')};"
        "document.getElementById('login').requestSubmit()"
    )
    page.wait_for("document.readyState === 'complete' && !document.getElementById('login-error').hidden")
    assert "not accepted" in page.evaluate("document.getElementById('login-error').textContent")
    # The admin key: the cookie is set as documented and the dashboard loads.
    page.evaluate(
        f"document.getElementById('key').value = {json.dumps(ADMIN)};document.getElementById('login').requestSubmit()"
    )
    page.wait_for("document.body.dataset.state === 'ready'")
    cookies = {c["name"]: c for c in page.send("Network.getCookies", {"urls": [traffic.gw.url]})["cookies"]}
    assert cookies[COOKIE]["value"] == ADMIN
    assert cookies[COOKIE]["sameSite"] == "Strict" and cookies[COOKIE]["path"] == "/"
    assert not cookies[COOKIE]["httpOnly"]
    # Sign out forgets the key.
    page.evaluate("document.getElementById('signout').click()")
    page.wait_for("document.getElementById('login') !== null")
    assert COOKIE not in {c["name"] for c in page.send("Network.getCookies", {"urls": [traffic.gw.url]})["cookies"]}
    assert page.errors() == []


# ---- the screenshot in the docs -----------------------------------------------------------------

DEMO_CHANNELS = {  # name: (share of traffic, typical latency ms, upstream error rate)
    "openai": (0.55, 900.0, 0.01),
    "azure-eu": (0.30, 1200.0, 0.02),
    "openrouter": (0.15, 1600.0, 0.04),
}
DEMO_MODELS = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6)}
DEMO_KEYS = ("team-search", "team-support", "ci-bot", "admin")
DEMO_ERRORS = (
    ("UpstreamUnavailable", 503, "Upstream answered 503: The server is overloaded or not ready yet."),
    ("UpstreamTimeout", 504, "No first byte from the upstream within 30 s."),
    ("UpstreamRateLimited", 429, "Rate limit reached for requests (retry after 20 s)."),
)


def demo_history(now: datetime) -> list[RequestRecord]:
    """An hour of plausible traffic, deterministic: load that swells and ebbs, and an outage of
    azure-eu 25 minutes ago (slow, failing, its requests failed over to openai)."""
    rng = random.Random(20261101)
    records: list[RequestRecord] = []
    for minute in range(60, 0, -1):
        load = 14 + 8 * math.sin(minute / 9.0) + rng.uniform(-2, 2)
        outage = 22 <= minute <= 28
        for channel, (share, latency, error_rate) in DEMO_CHANNELS.items():
            for _ in range(max(0, round(load * share + rng.uniform(-1, 1)))):
                stamp = now - timedelta(minutes=minute, seconds=rng.uniform(0, 59))
                model = "gpt-4o-mini" if rng.random() < 0.6 else "gpt-4o"
                key = rng.choices(DEMO_KEYS, weights=(5, 3, 2, 0.3))[0]
                prompt, completion = rng.randint(200, 2400), rng.randint(40, 700)
                price_in, price_out = DEMO_MODELS[model]
                served, attempts = channel, []
                failing = error_rate * (12 if outage and channel == "azure-eu" else 1)
                took = latency * rng.uniform(0.6, 1.5) * (3 if outage and channel == "azure-eu" else 1)
                error = None
                if rng.random() < failing:
                    error = rng.choice(DEMO_ERRORS)
                    attempts.append(
                        AttemptRecord(
                            channel=channel,
                            upstream_model=model,
                            key_fingerprint="key-1a2b",
                            outcome=error[0],
                            status=error[1],
                            latency_ms=took,
                        )
                    )
                    if rng.random() < 0.7:  # failed over
                        served, error = "openai", None
                        took += latency * rng.uniform(0.6, 1.2)
                if error is None:
                    attempts.append(
                        AttemptRecord(
                            channel=served,
                            upstream_model=model,
                            key_fingerprint="key-3c4d",
                            outcome="ok",
                            status=200,
                            latency_ms=took,
                        )
                    )
                records.append(
                    RequestRecord(
                        request_id=f"demo-{len(records)}",
                        timestamp=stamp,
                        endpoint="POST /v1/chat/completions",
                        client_key=key,
                        model=model,
                        status=200 if error is None else error[1],
                        success=error is None,
                        latency_ms=round(took, 1),
                        channel=served,
                        upstream_model=model,
                        attempts=tuple(attempts),
                        error_class=None if error is None else error[0],
                        error_message=None if error is None else error[2],
                        prompt_tokens=prompt if error is None else 0,
                        completion_tokens=completion if error is None else 0,
                        cost=0.0 if error is not None else (prompt * price_in + completion * price_out) / 1e6,
                    )
                )
    return records


def demo_config(channels: dict[str, FakeOpenAI]) -> str:
    extra = {"openrouter": ", llama-3.1-70b"}
    providers = "".join(
        f"""
  - provider: {name}
    base_url: {fake.base_url}
    api: sk-up-demo-{name}
    model: [gpt-4o, gpt-4o-mini{extra.get(name, "")}]"""
        for name, fake in channels.items()
    )
    return f"""
providers:{providers}
api_keys:
  - api: {ADMIN}
    role: admin
  - api: {USER}
    role: team-search
preferences:
  model_price: {{gpt-4o: "2.5,10", gpt-4o-mini: "0.15,0.6"}}
"""


@browser_timeout
@pytest.mark.skipif(os.environ.get("UNIGATE_UPDATE_SCREENSHOT") != "1", reason="set UNIGATE_UPDATE_SCREENSHOT=1")
def test_docs_screenshot(tmp_path: Path, browser: Browser) -> None:
    db = tmp_path / "stats.db"

    async def seed() -> None:
        store = StatsStore(f"sqlite+aiosqlite:///{db}")
        try:
            await store.write(demo_history(datetime.now(UTC)))
        finally:
            await store.close()

    asyncio.run(seed())
    env = {"DISABLE_DATABASE": "false", "DB_PATH": str(db), "UNIGATE_STATS_FLUSH_INTERVAL": "0.1"}
    names = list(DEMO_CHANNELS)
    fakes = {
        name: FakeOpenAI(models=("gpt-4o", "gpt-4o-mini", "llama-3.1-70b"), api_key=f"sk-up-demo-{name}")
        for name in names
    }
    try:
        with run_gateway(demo_config(fakes), env=env) as gw:
            # Live: the only channel serving llama-3.1-70b fails now, and cools down.
            fakes["openrouter"].script(Fail(500, message="upstream connect error or disconnect/reset"))
            with pytest.raises(openai.APIStatusError):
                _ask(gw.client(USER), "llama-3.1-70b")
            page = open_page(browser, gw, ADMIN)
            page.wait_for(
                "document.body.dataset.state === 'ready' && "
                "document.querySelectorAll('#table-health .bad').length === 1 && "
                "document.querySelector('#table-failures tbody th').textContent !== ''"
            )
            assert page.evaluate("document.querySelectorAll('#chart-requests path.series').length") == 3
            assert page.errors() == []
            SCREENSHOT.write_bytes(page.screenshot(full_page=True))
    finally:
        for fake in fakes.values():
            fake.stop()


@browser_timeout
def test_statistics_disabled(browser: Browser) -> None:
    with FakeOpenAI(api_key=UP_A) as a, FakeOpenAI(api_key=UP_B) as b, run_gateway(config(a, b)) as gw:
        page = open_page(browser, gw, ADMIN)
        page.wait_for("document.body.dataset.loads >= 1")
        problem = page.evaluate(
            "document.getElementById('problem').hidden ? '' : document.getElementById('problem').textContent"
        )
        assert "DISABLE_DATABASE=true" in problem
        assert page.evaluate("document.getElementById('total-cooling').textContent") == "0"
        assert page.evaluate("document.querySelectorAll('#chart-requests path.series').length") == 0
        assert page.errors() == []
