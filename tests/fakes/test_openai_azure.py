"""The Azure flavour of the fake OpenAI upstream is faithful: the official SDK's ``AzureOpenAI``
client (deployment URL, ``api-version`` query, ``api-key`` header) and the plain ``OpenAI`` client
on the v1 path both work against it, and it refuses what Azure refuses."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes.openai_azure import content_filter_error
from tests.fakes.openai_upstream import Fail, FakeOpenAI, Reply

KEY = "azure-key-0001"
VERSION = "2024-10-21"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello azure"}]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=("gpt-4o-dep", "gpt-4o-mini-dep"), api_key=KEY, flavor="azure") as f:
        yield f
    assert f.errors == []


@pytest.fixture
def azure(fake: FakeOpenAI) -> Iterator[openai.AzureOpenAI]:
    client = openai.AzureOpenAI(azure_endpoint=fake.url, api_key=KEY, api_version=VERSION, max_retries=0, timeout=5.0)
    yield client
    client.close()


def raw_post(fake: FakeOpenAI, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        conn.request("POST", path, json.dumps(body), {"content-type": "application/json", **headers})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_the_sdk_reaches_the_deployment_with_api_version_and_api_key(
    fake: FakeOpenAI, azure: openai.AzureOpenAI
) -> None:
    completion = azure.chat.completions.create(model="gpt-4o-dep", messages=HELLO)
    assert completion.choices[0].message.content == "echo: hello azure"
    [req] = fake.chat_requests
    assert req.path == "/openai/deployments/gpt-4o-dep/chat/completions"
    assert f"api-version={VERSION}" in req.query
    assert req.headers["api-key"] == KEY
    wire = completion.model_dump()
    assert wire["prompt_filter_results"][0]["content_filter_results"]["hate"] == {
        "filtered": False,
        "severity": "safe",
    }
    assert wire["choices"][0]["content_filter_results"]["violence"]["severity"] == "safe"


def test_the_deployment_in_the_path_is_the_model(fake: FakeOpenAI, azure: openai.AzureOpenAI) -> None:
    fake.script_for("gpt-4o-mini-dep", Reply(text="from the mini deployment"))
    completion = azure.chat.completions.create(model="gpt-4o-mini-dep", messages=HELLO)
    assert completion.choices[0].message.content == "from the mini deployment"


def test_a_stream_starts_with_the_filter_only_chunk(azure: openai.AzureOpenAI) -> None:
    chunks = list(azure.chat.completions.create(model="gpt-4o-dep", messages=HELLO, stream=True))
    first = chunks[0]
    assert (first.id, first.model, first.created, first.choices) == ("", "", 0, [])
    assert (first.model_extra or {})["prompt_filter_results"][0]["prompt_index"] == 0
    rest = chunks[1:]
    assert len({c.id for c in rest}) == 1 and rest[0].id.startswith("chatcmpl-")
    assert "".join(c.choices[0].delta.content or "" for c in rest) == "echo: hello azure"
    assert all("content_filter_results" in (c.choices[0].model_extra or {}) for c in rest)


def test_the_v1_path_takes_the_model_from_the_body_without_api_version(fake: FakeOpenAI) -> None:
    client = openai.OpenAI(base_url=fake.url + "/openai/v1", api_key=KEY, max_retries=0, timeout=5.0)
    try:
        completion = client.chat.completions.create(model="gpt-4o-dep", messages=HELLO)
    finally:
        client.close()
    assert completion.choices[0].message.content == "echo: hello azure"
    [req] = fake.chat_requests
    assert req.path == "/openai/v1/chat/completions" and req.query == ""
    assert req.headers["authorization"] == f"Bearer {KEY}"


def test_the_foundry_models_path_needs_api_version(fake: FakeOpenAI) -> None:
    body = {"model": "gpt-4o-dep", "messages": HELLO}
    status, answer = raw_post(fake, "/models/chat/completions?api-version=2024-05-01-preview", body, {"api-key": KEY})
    assert status == 200 and answer["choices"][0]["message"]["content"] == "echo: hello azure"
    status, answer = raw_post(fake, "/models/chat/completions", body, {"api-key": KEY})
    assert (status, answer) == (404, {"error": {"code": "404", "message": "Resource not found"}})


def test_missing_api_version_is_azures_404(fake: FakeOpenAI) -> None:
    status, answer = raw_post(fake, "/openai/deployments/gpt-4o-dep/chat/completions", {"messages": HELLO}, {})
    assert status == 401  # auth is checked first
    status, answer = raw_post(
        fake, "/openai/deployments/gpt-4o-dep/chat/completions", {"messages": HELLO}, {"api-key": KEY}
    )
    assert status == 404 and answer["error"]["code"] == "404"


def test_a_wrong_key_is_azures_401(fake: FakeOpenAI) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=fake.url, api_key="wrong", api_version=VERSION, max_retries=0, timeout=5.0
    )
    try:
        with pytest.raises(openai.AuthenticationError) as info:
            client.chat.completions.create(model="gpt-4o-dep", messages=HELLO)
    finally:
        client.close()
    assert info.value.status_code == 401
    assert "Access denied" in info.value.message


def test_an_unknown_deployment_is_deployment_not_found(azure: openai.AzureOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        azure.chat.completions.create(model="no-such-dep", messages=HELLO)
    body: Any = info.value.body
    assert body["code"] == "DeploymentNotFound"


def test_a_filtered_prompt_is_a_400_with_innererror(fake: FakeOpenAI, azure: openai.AzureOpenAI) -> None:
    fake.script(Fail(400, body=content_filter_error(("jailbreak", "violence"))))
    with pytest.raises(openai.BadRequestError) as info:
        azure.chat.completions.create(model="gpt-4o-dep", messages=HELLO)
    assert info.value.code == "content_filter"
    body: Any = info.value.body
    result = body["innererror"]["content_filter_result"]
    assert result["jailbreak"] == {"filtered": True, "detected": True}
    assert result["violence"]["filtered"] is True and result["hate"]["filtered"] is False
