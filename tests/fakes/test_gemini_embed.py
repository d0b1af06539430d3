"""The fake Gemini API's embedding methods are faithful: ``google-genai``'s ``embed_content``
(which calls ``:batchEmbedContents`` on the Gemini API) parses the answer, ``outputDimensionality``
is honoured, failures surface as the SDK's errors, and ``:embedContent`` (the single form unigate
uses for a string input) answers in its own shape."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini_upstream import FakeGemini, GFail
from tests.fakes.media_wire import vector

KEY = "AIza-fake-embed-key-0001"
MODEL = "gemini-embedding-001"


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(models=(MODEL,), api_key=KEY) as f:
        yield f
    assert f.errors == []


@pytest.fixture
def client(fake: FakeGemini) -> Iterator[genai.Client]:
    c = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=fake.url, timeout=5000))
    yield c
    c.close()


def test_sdk_batch_embeddings(fake: FakeGemini, client: genai.Client) -> None:
    result = client.models.embed_content(model=MODEL, contents=["Paris", "Oslo city"])
    assert result.embeddings is not None
    assert [e.values for e in result.embeddings] == [vector("Paris", 4), vector("Oslo city", 4)]
    sent = fake.requests[-1]
    assert sent.path.endswith(f"/models/{MODEL}:batchEmbedContents")
    assert [r["model"] for r in sent.json["requests"]] == [f"models/{MODEL}"] * 2
    sized = client.models.embed_content(
        model=MODEL, contents="one", config=types.EmbedContentConfig(output_dimensionality=6)
    )
    assert sized.embeddings is not None and sized.embeddings[0].values == vector("one", 6)


def test_sdk_sees_scripted_failures(fake: FakeGemini, client: genai.Client) -> None:
    fake.script(GFail(503), GFail(429, retry_delay="3s"))
    with pytest.raises(errors.ServerError) as server:
        client.models.embed_content(model=MODEL, contents="x")
    assert server.value.code == 503
    with pytest.raises(errors.ClientError) as quota:
        client.models.embed_content(model=MODEL, contents="x")
    assert quota.value.code == 429 and quota.value.status == "RESOURCE_EXHAUSTED"


def test_single_embed_content_and_bad_bodies(fake: FakeGemini) -> None:
    url = f"{fake.url}/v1beta/models/{MODEL}"
    headers = {"x-goog-api-key": KEY}
    one = httpx.post(f"{url}:embedContent", json={"content": {"parts": [{"text": "abc"}]}}, headers=headers)
    assert one.status_code == 200 and one.json() == {"embedding": {"values": vector("abc", 4)}}
    for path, body in (
        (":embedContent", {"content": {"parts": [{"text": ""}]}}),
        (":embedContent", {"content": {"parts": [{"text": "a"}]}, "dimensions": 3}),
        (":batchEmbedContents", {"requests": [{"model": "models/other", "content": {"parts": [{"text": "a"}]}}]}),
        (":batchEmbedContents", {"requests": []}),
    ):
        resp = httpx.post(url + path, json=body, headers=headers)
        assert resp.status_code == 400 and resp.json()["error"]["status"] == "INVALID_ARGUMENT", body
    wrong_key = httpx.post(f"{url}:embedContent", json={"content": {"parts": [{"text": "a"}]}}, headers={})
    assert wrong_key.status_code == 403
