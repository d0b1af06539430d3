"""Client keys, permissions, /v1/models, bad input: through the official SDK and raw HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway.harness import RunningGateway, run_gateway

ADMIN = "sk-admin-canary-5d1e"
K_ALL = "sk-all-canary-0a9f"
K_NAME = "sk-name-canary-33c1"
K_PROV = "sk-prov-canary-8b27"
K_PROV_MODEL = "sk-provmodel-canary-e611"
K_LITERAL = "sk-literal-canary-4f0d"


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with (
        FakeOpenAI(models=("gpt-4o", "gpt-4o-mini", "o1")) as a,
        FakeOpenAI(models=("gpt-4o", "meta/llama-3", "claude-3")) as b,
    ):
        yield a, b


@pytest.fixture(scope="module")
def gw(fakes: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[RunningGateway]:
    a, b = fakes
    text = f"""
providers:
  - provider: alpha
    base_url: {a.base_url}
    api: sk-up-a
    model: [gpt-4o, gpt-4o-mini, o1]
  - provider: beta
    base_url: {b.base_url}
    api: sk-up-b
    model:
      - gpt-4o
      - meta/llama-3
      - claude-3: claude
  - provider: discovered
    base_url: {a.base_url}
    api: sk-up-a
api_keys:
  - api: {ADMIN}
    role: admin
  - api: {K_ALL}
    model: [all]
  - api: {K_NAME}
    model: [gpt-4o-mini]
  - api: {K_PROV}
    model: ["beta/*"]
  - api: {K_PROV_MODEL}
    model: [beta/gpt-4o, alpha/o1]
  - api: {K_LITERAL}
    model: ["<meta/llama-3>"]
"""
    with run_gateway(text) as gateway:
        yield gateway


def ids(gw: RunningGateway, key: str) -> list[str]:
    return [m.id for m in gw.client(key).models.list()]


def test_models_list_per_key(gw: RunningGateway) -> None:
    assert ids(gw, K_NAME) == ["gpt-4o-mini"]
    assert ids(gw, K_PROV) == ["gpt-4o", "meta/llama-3", "claude"]
    assert ids(gw, K_PROV_MODEL) == ["gpt-4o", "o1"]
    assert ids(gw, K_LITERAL) == ["meta/llama-3"]
    assert set(ids(gw, K_ALL)) == {"gpt-4o", "gpt-4o-mini", "o1", "meta/llama-3", "claude"}
    page = gw.client(K_NAME).models.list()
    assert page.data[0].object == "model" and page.data[0].owned_by == "alpha"


def test_discovered_models_are_served(gw: RunningGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    # 'discovered' lists no models: they came from the upstream's GET /models at start-up.
    a, _ = fakes
    assert any(r.method == "GET" and r.path == "/v1/models" for r in a.requests)
    routes = gw.app.state.gateway.runtime.channels_by_name["discovered"].models
    assert set(routes) == {"gpt-4o", "gpt-4o-mini", "o1"}


def send(gw: RunningGateway, key: str, model: str) -> str:
    raw = gw.client(key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "p"}]
    )
    return raw.headers["x-unigate-channel"]


def test_permission_syntaxes(gw: RunningGateway) -> None:
    assert send(gw, K_NAME, "gpt-4o-mini") == "alpha"
    assert send(gw, K_PROV, "gpt-4o") == "beta"
    assert send(gw, K_PROV, "claude") == "beta"
    assert send(gw, K_PROV_MODEL, "gpt-4o") == "beta"
    assert send(gw, K_PROV_MODEL, "o1") == "alpha"
    assert send(gw, K_LITERAL, "meta/llama-3") == "beta"
    with pytest.raises(openai.PermissionDeniedError) as info:
        send(gw, K_NAME, "gpt-4o")
    assert "gpt-4o" in info.value.message
    with pytest.raises(openai.PermissionDeniedError):
        send(gw, K_PROV, "o1")
    with pytest.raises(openai.PermissionDeniedError):
        send(gw, K_PROV_MODEL, "gpt-4o-mini")
    with pytest.raises(openai.NotFoundError) as nf:
        send(gw, K_ALL, "no-such-model")
    assert "no-such-model" in nf.value.message


def test_admin_key_without_model_list_may_use_everything(gw: RunningGateway) -> None:
    assert "claude" in ids(gw, ADMIN)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": f"Bearer {K_ALL}-forged"},
        {"authorization": f"Bearer {K_ALL[:-1]}"},
        {"authorization": f"Basic {K_ALL}"},
        {"authorization": "Bearer"},
        {"x-api-key": "sk-nope"},
        {"authorization": "Bearer " + "x" * 10000},
    ],
)
def test_bad_keys_get_one_fixed_401(gw: RunningGateway, headers: dict[str, str]) -> None:
    resp = httpx.post(
        gw.base_url + "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        headers=headers,
    )
    assert resp.status_code == 401
    err = resp.json()["error"]
    assert err["type"] == "authentication_error" and err["code"] == "invalid_api_key"
    assert K_ALL not in resp.text and "forged" not in resp.text


@pytest.mark.parametrize("header", ["x-api-key", "x-goog-api-key"])
def test_alternative_key_headers(gw: RunningGateway, header: str) -> None:
    resp = httpx.get(gw.base_url + "/models", headers={header: K_NAME})
    assert resp.status_code == 200
    assert [m["id"] for m in resp.json()["data"]] == ["gpt-4o-mini"]


@pytest.mark.parametrize(
    ("content", "ctype", "status", "fragment"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"", "application/json", 400, "empty"),
        (b"[1,2]", "application/json", 400, "JSON object"),
        (b"null", "application/json", 400, "JSON object"),
        (b'{"model":"gpt-4o","messages":[]}', "application/json", 400, "messages"),
        (b'{"model":"gpt-4o"}', "application/json", 400, "messages"),
        (b'{"model":"gpt-4o","messages":"hi"}', "application/json", 400, "messages"),
        (b'{"model":"gpt-4o","messages":[{"content":"x"}]}', "application/json", 400, "role"),
        (b'{"messages":[{"role":"user","content":"x"}]}', "application/json", 400, "model"),
        (b'{"model":5,"messages":[{"role":"user","content":"x"}]}', "application/json", 400, "model"),
        (
            b'{"model":"gpt-4o","stream":"yes","messages":[{"role":"user","content":"x"}]}',
            "application/json",
            400,
            "stream",
        ),
        (
            b'{"model":"gpt-4o","temperature":NaN,"messages":[{"role":"user","content":"x"}]}',
            "application/json",
            400,
            "JSON",
        ),
        (b'{"model":"gpt-4o","n":' + b"9" * 5000 + b',"messages":[]}', "application/json", 400, "JSON"),
        (b"[" * 100000, "application/json", 400, "JSON"),
        (b'{"model":"\xc3\x28","messages":[]}', "application/json", 400, "JSON"),
        (b"model=gpt-4o", "multipart/form-data; boundary=x", 415, "Content-Type"),
        (b'{"model":"nope","messages":[{"role":"user","content":"x"}]}', "application/json", 404, "nope"),
    ],
)
def test_bad_input_gets_openai_shaped_4xx(
    gw: RunningGateway, fakes: tuple[FakeOpenAI, FakeOpenAI], content: bytes, ctype: str, status: int, fragment: str
) -> None:
    a, b = fakes
    before = len(a.chat_requests) + len(b.chat_requests)
    resp = httpx.post(
        gw.base_url + "/chat/completions",
        content=content,
        headers={"authorization": f"Bearer {K_ALL}", "content-type": ctype},
    )
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert fragment in err["message"]
    assert len(a.chat_requests) + len(b.chat_requests) == before


def test_curl_default_form_content_type_is_accepted(gw: RunningGateway) -> None:
    resp = httpx.post(
        gw.base_url + "/chat/completions",
        content=b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"curl"}]}',
        headers={"authorization": f"Bearer {K_NAME}", "content-type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"] == "echo: curl"


def test_unknown_path_and_wrong_method(gw: RunningGateway) -> None:
    resp = httpx.get(gw.url + "/v1/nothing")
    assert resp.status_code == 404 and "error" in resp.json()
    resp = httpx.get(gw.base_url + "/chat/completions")
    assert resp.status_code == 405 and resp.json()["error"]["type"] == "invalid_request_error"
