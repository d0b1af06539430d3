"""Embeddings, images, audio and moderations through a real unigate, driven by the official
``openai`` SDK against loopback fakes: each endpoint, failover on each, aliases, permissions,
rate limits, body limits (413) and the statistics records."""

from __future__ import annotations

import base64
import io
import socket
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest

from tests.fakes.gemini_upstream import FakeGemini, GFail
from tests.fakes.media_upstream import FakeMedia, MCut, MEmpty, MFail, Refuse
from tests.fakes.media_wire import speech_bytes, vector
from tests.gateway.harness import RunningGateway, run_gateway
from tests.gateway.test_stats import wait_until

CLIENT = "sk-client-media-canary-41d2"
LIMITED = "sk-limited-media-canary-77e0"
UP_A = "sk-up-a-media-canary-0a1b"
UP_B = "sk-up-b-media-canary-2c3d"
GKEY = "AIza-media-canary-gemini-9f8e"
MEDIA_MODELS = "[text-embedding-3-small, gpt-image-1, tts-1, whisper-1, omni-moderation-latest]"


def config(a: FakeMedia, b: FakeMedia, g: FakeGemini) -> str:
    return f"""
providers:
  - provider: alpha
    base_url: {a.base_url}
    api: {UP_A}
    model:
      - text-embedding-3-small
      - gpt-image-1
      - tts-1
      - whisper-1
      - omni-moderation-latest
      - text-embedding-3-large: embed-big
      - whisper-1: ears
      - gpt-image-1: painter
  - provider: beta
    base_url: {b.base_url}
    api: {UP_B}
    model: {MEDIA_MODELS}
  - provider: gem
    engine: gemini
    base_url: {g.url}
    api: {GKEY}
    model: [gemini-embedding-001, text-embedding-3-small]
  - provider: claude
    engine: anthropic
    base_url: http://127.0.0.1:9/v1/messages
    api: sk-ant-unused
    model: [claude-sonnet-4-6]
api_keys:
  - api: {CLIENT}
    role: admin
  - api: {LIMITED}
    role: limited
    model: [alpha/tts-1]
    preferences:
      rate_limit: 1/min
preferences:
  cooldown_period: 0
  model_price: {{text-embedding-3-small: "2,0", default: "1,1"}}
"""


@pytest.fixture
def fakes() -> Iterator[tuple[FakeMedia, FakeMedia, FakeGemini]]:
    # alpha ignores encoding_format (answers arrays): the gateway must still honour base64.
    with (
        FakeMedia(api_key=UP_A, float_only=True) as a,
        FakeMedia(api_key=UP_B) as b,
        FakeGemini(models=("gemini-embedding-001", "text-embedding-3-small"), api_key=GKEY) as g,
    ):
        yield a, b, g
        assert a.errors == b.errors == g.errors == []


@pytest.fixture
def gw(fakes: tuple[FakeMedia, FakeMedia, FakeGemini]) -> Iterator[RunningGateway]:
    with run_gateway(config(*fakes)) as gateway:
        yield gateway


@pytest.fixture
def client(gw: RunningGateway) -> openai.OpenAI:
    return gw.client(CLIENT)


def test_embeddings_in_both_encodings_with_aliases(
    fakes: tuple[FakeMedia, FakeMedia, FakeGemini], client: openai.OpenAI
) -> None:
    a, _, _ = fakes
    # The SDK asks for base64 by default; alpha answers arrays; the gateway packs them.
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["Paris", "Oslo city"])
    assert isinstance(raw.http_response.json()["data"][0]["embedding"], str)
    default = raw.parse()
    assert [d.embedding for d in default.data] == [vector("Paris", 4), vector("Oslo city", 4)]
    assert default.usage.prompt_tokens == 3 and raw.headers["x-unigate-channel"] == "alpha"
    big = client.embeddings.create(model="embed-big", input="one", encoding_format="float", dimensions=6)
    assert big.model == "embed-big" and big.data[0].embedding == vector("one", 6)
    assert a.requests[-1].json == {
        "model": "text-embedding-3-large",
        "input": "one",
        "encoding_format": "float",
        "dimensions": 6,
    }
    tokens = client.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3]], encoding_format="float")
    assert tokens.data[0].embedding == vector([1, 2, 3], 4)


def test_gemini_embeddings_translated_both_ways(
    fakes: tuple[FakeMedia, FakeMedia, FakeGemini], client: openai.OpenAI
) -> None:
    _, _, g = fakes
    single = client.embeddings.create(model="gemini-embedding-001", input="abc", encoding_format="float")
    assert single.data[0].embedding == vector("abc", 4) and single.model == "gemini-embedding-001"
    assert g.requests[-1].path.endswith("/models/gemini-embedding-001:embedContent")
    assert g.requests[-1].json == {"content": {"parts": [{"text": "abc"}]}}
    batch = client.embeddings.create(model="gemini-embedding-001", input=["abc", "de"], dimensions=3)  # base64
    assert [d.embedding for d in batch.data] == [vector("abc", 3), vector("de", 3)]
    assert [d.index for d in batch.data] == [0, 1]
    sent = g.requests[-1]
    assert sent.path.endswith(":batchEmbedContents") and sent.headers["x-goog-api-key"] == GKEY
    assert [r["outputDimensionality"] for r in sent.json["requests"]] == [3, 3]
    with pytest.raises(openai.BadRequestError, match="token arrays"):
        client.embeddings.create(model="gemini-embedding-001", input=[[1, 2]])
    with pytest.raises(openai.BadRequestError, match="'input'"):
        client.embeddings.create(model="gemini-embedding-001", input=[])


def test_images_generate_and_edit(fakes: tuple[FakeMedia, FakeMedia, FakeGemini], client: openai.OpenAI) -> None:
    a, _, _ = fakes
    made = client.images.generate(model="gpt-image-1", prompt="A postcard of Oslo", n=2, size="1024x1024")
    assert made.data is not None and len(made.data) == 2
    assert base64.b64decode(made.data[0].b64_json or "") == b"image:A postcard of Oslo"
    assert a.requests[-1].json["size"] == "1024x1024"
    edited = client.images.edit(model="painter", image=("in.png", b"\x89PNG\r\n--x"), prompt="add snow")
    assert edited.data is not None and base64.b64decode(edited.data[0].b64_json or "") == b"edit:add snow:9"
    parts = {p.name: p for p in a.form(a.requests_to("/images/edits")[-1])}
    assert parts["model"].text == "gpt-image-1" and parts["image"].data == b"\x89PNG\r\n--x"
    assert parts["image"].filename == "in.png" and parts["prompt"].text == "add snow"


def test_speech_streams_the_audio_with_its_content_type(
    fakes: tuple[FakeMedia, FakeMedia, FakeGemini], client: openai.OpenAI
) -> None:
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input="Hei Oslo") as resp:
        assert resp.headers["content-type"] == "audio/mpeg" and resp.headers["x-unigate-channel"] == "alpha"
        chunks = list(resp.iter_bytes())
    assert b"".join(chunks) == speech_bytes("Hei Oslo")
    wav = client.audio.speech.create(model="tts-1", voice="alloy", input="x", response_format="wav")
    assert wav.response.headers["content-type"] == "audio/wav" and wav.content == speech_bytes("x")


def test_speech_empty_body_fails_over(fakes: tuple[FakeMedia, FakeMedia, FakeGemini], client: openai.OpenAI) -> None:
    a, b, _ = fakes
    a.script(MEmpty())
    resp = client.audio.speech.with_raw_response.create(model="tts-1", voice="alloy", input="Hei")
    assert resp.headers["x-unigate-channel"] == "beta" and resp.headers["x-unigate-attempts"] == "2"
    assert resp.content == speech_bytes("Hei")
    assert len(a.requests_to("/audio/speech")) == len(b.requests_to("/audio/speech")) == 1


def test_speech_cut_after_the_first_bytes_is_a_cut_response(
    fakes: tuple[FakeMedia, FakeMedia, FakeGemini], client: openai.OpenAI
) -> None:
    a, b, _ = fakes
    a.script(MCut(chunks=1))
    received = b""
    with (
        pytest.raises(httpx2.TransportError),
        client.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input="Hei") as resp,
    ):
        for chunk in resp.iter_bytes():
            received += chunk
    assert received == speech_bytes("Hei")[:64]  # what arrived before the cut, never a retry
    assert b.requests_to("/audio/speech") == []


def test_transcriptions_and_translations_forward_the_file(
    fakes: tuple[FakeMedia, FakeMedia, FakeGemini], client: openai.OpenAI
) -> None:
    a, _, _ = fakes
    audio = b"RIFF" + bytes(range(256)) * 300  # binary with CR, LF and dashes
    text = client.audio.transcriptions.create(model="ears", file=("hello.wav", io.BytesIO(audio)), language="no")
    assert text.text == f"heard {len(audio)} bytes of hello.wav"
    sent = a.requests_to("/audio/transcriptions")[-1]
    parts = {p.name: p for p in a.form(sent)}
    assert parts["file"].data == audio and parts["model"].text == "whisper-1" and parts["language"].text == "no"
    assert int(sent.headers["content-length"]) == len(sent.body)  # a sized upload, not chunked
    plain = client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", b"abc"), response_format="text")
    assert plain == "heard 3 bytes of a.mp3"
    with pytest.warns(DeprecationWarning):  # the SDK marks translations deprecated; the route exists
        translated = client.audio.translations.create(model="whisper-1", file=("b.mp3", b"abcd"))
    assert translated.text == "translated 4 bytes of b.mp3"


def test_moderations_with_and_without_a_model(
    fakes: tuple[FakeMedia, FakeMedia, FakeGemini], client: openai.OpenAI
) -> None:
    a, _, _ = fakes
    result = client.moderations.create(input=["hello", "there"])  # no model: preferences.moderation_model
    assert [r.flagged for r in result.results] == [False, False]
    assert a.requests[-1].json == {"input": ["hello", "there"], "model": "omni-moderation-latest"}
    assert client.moderations.create(model="omni-moderation-latest", input="x").results


def _translate(client: openai.OpenAI) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the SDK marks translations deprecated
        return client.audio.translations.create(model="whisper-1", file=("a.mp3", b"abc"))


CALLS: dict[str, tuple[str, Callable[[openai.OpenAI], Any]]] = {
    "embeddings": ("/embeddings", lambda c: c.embeddings.create(model="text-embedding-3-small", input="x")),
    "images": ("/images/generations", lambda c: c.images.generate(model="gpt-image-1", prompt="p")),
    "edits": (
        "/images/edits",
        lambda c: c.images.edit(model="gpt-image-1", image=("i.png", b"img"), prompt="p"),
    ),
    "speech": ("/audio/speech", lambda c: c.audio.speech.create(model="tts-1", voice="alloy", input="x").content),
    "transcriptions": (
        "/audio/transcriptions",
        lambda c: c.audio.transcriptions.create(model="whisper-1", file=("a.mp3", b"abc")),
    ),
    "translations": ("/audio/translations", lambda c: _translate(c)),
    "moderations": ("/moderations", lambda c: c.moderations.create(input="x")),
}


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("failure", [MFail(500), MFail(429), Refuse()], ids=["500", "429", "reset"])
def test_failover_on_every_endpoint(
    name: str, failure: object, fakes: tuple[FakeMedia, FakeMedia, FakeGemini], client: openai.OpenAI
) -> None:
    a, b, _ = fakes
    route, call = CALLS[name]
    a.script(failure)  # type: ignore[arg-type]
    assert call(client)
    assert len(a.requests_to(route)) == 1 and len(b.requests_to(route)) == 1


def test_embeddings_fail_over_from_gemini_to_openai_and_back(fakes: tuple[FakeMedia, FakeMedia, FakeGemini]) -> None:
    a, b, g = fakes
    text = config(a, b, g).replace(f"  - api: {CLIENT}\n", f"  - api: {CLIENT}\n    model: [gem/*, alpha/*]\n")
    with run_gateway(text) as gw:
        g.script(GFail(503))
        resp = gw.client(CLIENT).embeddings.with_raw_response.create(
            model="text-embedding-3-small", input="abc", encoding_format="float"
        )
        assert resp.headers["x-unigate-channel"] == "alpha" and resp.parse().data[0].embedding == vector("abc", 4)
        served = gw.client(CLIENT).embeddings.with_raw_response.create(model="text-embedding-3-small", input="abc")
        assert served.headers["x-unigate-channel"] == "gem" and served.parse().data[0].embedding == vector("abc", 4)


def test_all_attempts_failing_is_the_last_error(
    fakes: tuple[FakeMedia, FakeMedia, FakeGemini], client: openai.OpenAI
) -> None:
    a, b, _ = fakes
    a.script(MFail(503))
    b.script(MFail(502))
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model="gpt-image-1", prompt="p")
    assert caught.value.status_code == 502 and "All 2 attempt(s)" in str(caught.value.message)
    a.script(MFail(400, message="bad size"))
    with pytest.raises(openai.BadRequestError, match="bad size"):  # the client's fault: no failover
        client.images.generate(model="gpt-image-1", prompt="p")
    assert len(b.requests_to("/images/generations")) == 1


def test_permissions_unknown_models_and_unsupported_endpoints(gw: RunningGateway) -> None:
    limited = gw.client(LIMITED)
    with pytest.raises(openai.PermissionDeniedError):
        limited.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.NotFoundError):
        gw.client(CLIENT).embeddings.create(model="no-such-model", input="x")
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client(CLIENT).embeddings.create(model="claude-sonnet-4-6", input="x")
    assert caught.value.code == "unsupported_endpoint" and "/v1/embeddings" in caught.value.message
    with pytest.raises(openai.AuthenticationError):
        gw.client("sk-wrong").moderations.create(input="x")


def test_the_key_rate_limit_applies(gw: RunningGateway) -> None:
    limited = gw.client(LIMITED)
    assert limited.audio.speech.create(model="tts-1", voice="alloy", input="x").content
    with pytest.raises(openai.RateLimitError):
        limited.audio.speech.create(model="tts-1", voice="alloy", input="x")


def test_bad_requests_are_clear_400s(gw: RunningGateway) -> None:
    auth = {"authorization": f"Bearer {CLIENT}"}
    for path, body, param in (
        ("/embeddings", {"model": "text-embedding-3-small"}, "input"),
        ("/embeddings", {"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ("/images/generations", {"model": "gpt-image-1"}, "prompt"),
        ("/audio/speech", {"model": "tts-1", "input": ""}, "input"),
        ("/moderations", {"model": "omni-moderation-latest"}, "input"),
        ("/embeddings", {"input": "x"}, "model"),
    ):
        resp = httpx.post(gw.base_url + path, json=body, headers=auth)
        assert resp.status_code == 400 and resp.json()["error"]["param"] == param, (path, resp.text)
    wrong_type = httpx.post(gw.base_url + "/audio/transcriptions", json={"model": "whisper-1"}, headers=auth)
    assert wrong_type.status_code == 415
    no_file = httpx.post(gw.url + "/audio/transcriptions", data={"model": "whisper-1"}, files={"x": b"1"}, headers=auth)
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"  # the bare path works too
    long_boundary = "b" * 10_000  # reliability-matrix A22
    abuse = httpx.post(
        gw.base_url + "/audio/transcriptions",
        content=f"--{long_boundary}\r\n".encode(),
        headers={**auth, "content-type": f"multipart/form-data; boundary={long_boundary}"},
    )
    assert abuse.status_code == 400 and "boundary" in abuse.json()["error"]["message"]
    garbled = httpx.post(
        gw.base_url + "/audio/transcriptions",
        content=b"--b\r\nno headers here",
        headers={**auth, "content-type": "multipart/form-data; boundary=b"},
    )
    assert garbled.status_code == 400


def test_oversized_uploads_are_413_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch, fakes: tuple[FakeMedia, FakeMedia, FakeGemini], gw: RunningGateway
) -> None:
    a, b, _ = fakes
    monkeypatch.setenv("UNIGATE_MAX_BODY_AUDIO", "4096")
    client = gw.client(CLIENT)
    assert client.audio.transcriptions.create(model="whisper-1", file=("ok.wav", b"x" * 1000)).text
    with pytest.raises(openai.APIStatusError) as caught:
        client.audio.transcriptions.create(model="whisper-1", file=("big.wav", b"x" * 100_000))
    assert caught.value.status_code == 413 and "4096 bytes" in caught.value.message
    # Chunked, no Content-Length: the 413 arrives while the client is still sending.
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        head = (
            "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            f"Authorization: Bearer {CLIENT}\r\nContent-Type: multipart/form-data; boundary=b\r\n\r\n"
        )
        piece = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n' + b"y" * 5000
        sock.sendall(head.encode() + f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        answer = sock.recv(65536)  # the body is unfinished: only an early answer can arrive
    assert answer.startswith(b"HTTP/1.1 413")
    monkeypatch.setenv("UNIGATE_MAX_BODY_EMBEDDINGS", "100")
    with pytest.raises(openai.APIStatusError) as json_caught:
        client.embeddings.create(model="text-embedding-3-small", input="z" * 200)
    assert json_caught.value.status_code == 413
    assert len(a.requests_to("/audio/transcriptions")) == 1 and b.requests == []
    assert a.requests_to("/embeddings") == []


def _records(gw: RunningGateway, n: int) -> list[dict[str, Any]]:
    def fetch() -> list[dict[str, Any]] | None:
        resp = httpx.get(gw.base_url + "/stats/requests", headers={"authorization": f"Bearer {CLIENT}"})
        rows: list[dict[str, Any]] = resp.json()["data"]
        return rows if len(rows) >= n else None

    rows = wait_until(fetch)
    assert rows is not None, f"fewer than {n} records were written"
    return sorted(rows, key=lambda r: r["timestamp"])


def test_every_request_is_recorded_with_usage_and_cost(
    tmp_path: Path, fakes: tuple[FakeMedia, FakeMedia, FakeGemini]
) -> None:
    a, b, g = fakes
    env = {"DISABLE_DATABASE": "false", "DB_PATH": str(tmp_path / "stats.db")}
    with run_gateway(config(a, b, g), env=env) as gw:
        client = gw.client(CLIENT)
        a.script(MFail(500))
        client.embeddings.create(model="text-embedding-3-small", input=["one two", "three"])
        client.embeddings.create(model="gemini-embedding-001", input="four five six")
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hei").content  # noqa: B018
        client.audio.transcriptions.create(model="ears", file=("a.mp3", b"abc"))
        with pytest.raises(openai.PermissionDeniedError):
            gw.client(LIMITED).moderations.create(input="x")
        a.script(MCut(chunks=1))
        with pytest.raises(openai.APIConnectionError):  # the body was cut: never a complete-looking answer
            client.audio.speech.create(model="tts-1", voice="alloy", input="cut").content  # noqa: B018
        rows = _records(gw, 6)
    embed, gem, speech, heard, denied, cut = rows
    assert (cut["status"], cut["success"], cut["channel"], cut["error_class"]) == (
        502,
        False,
        "alpha",
        "UpstreamProtocolError",
    )
    assert cut["ttft_ms"] is not None  # the first bytes were sent before the cut
    assert embed["endpoint"] == "POST /v1/embeddings" and embed["channel"] == "beta"
    assert [(x["channel"], x["status"]) for x in embed["attempts"]] == [("alpha", 500), ("beta", 200)]
    assert (embed["prompt_tokens"], embed["tokens_estimated"]) == (3, False)
    assert embed["cost"] == pytest.approx(3 * 2 / 1_000_000)
    assert gem["channel"] == "gem" and gem["tokens_estimated"] and gem["prompt_tokens"] > 0
    assert speech["endpoint"] == "POST /v1/audio/speech" and speech["success"] and speech["ttft_ms"] is not None
    assert heard["endpoint"] == "POST /v1/audio/transcriptions" and heard["model"] == "ears"
    assert (heard["upstream_model"], heard["prompt_tokens"], heard["completion_tokens"]) == ("whisper-1", 14, 5)
    assert (denied["endpoint"], denied["status"], denied["client_key"]) == ("POST /v1/moderations", 403, "limited")
