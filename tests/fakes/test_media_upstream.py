"""The fake media upstream is faithful: the official ``openai`` SDK, pointed at it, parses every
endpoint's answer, uploads its files in a form the fake's strict multipart parser accepts, and
sees the fake's scripted failures as the SDK errors a real outage would cause."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import httpx2
import openai
import pytest

from tests.fakes.media_upstream import FakeMedia, MCut, MEmpty, MFail, MFlag, Refuse
from tests.fakes.media_wire import parse_multipart, to_base64, vector

KEY = "sk-media-fake-0001"


@pytest.fixture
def fake() -> Iterator[FakeMedia]:
    with FakeMedia(api_key=KEY) as f:
        yield f


@pytest.fixture
def client(fake: FakeMedia) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=10)


def test_embeddings_in_both_encodings(fake: FakeMedia, client: openai.OpenAI) -> None:
    default = client.embeddings.create(model="text-embedding-3-small", input=["Paris", "Oslo city"])
    # The SDK asks for base64 when the caller does not choose, and decodes it itself.
    assert fake.requests[-1].json["encoding_format"] == "base64"
    assert [d.embedding for d in default.data] == [vector("Paris", 4), vector("Oslo city", 4)]
    assert default.usage.prompt_tokens == 3 and default.model == "text-embedding-3-small"
    floats = client.embeddings.create(model="m", input="one", encoding_format="float", dimensions=6)
    assert floats.data[0].embedding == vector("one", 6)
    assert fake.requests[-1].json["dimensions"] == 6


def test_float_only_ignores_base64() -> None:
    with FakeMedia(float_only=True) as fake:
        raw = openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0).embeddings.with_raw_response.create(
            model="m", input="abc", encoding_format="base64"
        )
        assert isinstance(raw.http_response.json()["data"][0]["embedding"], list)


def test_images_generate_and_edit(fake: FakeMedia, client: openai.OpenAI) -> None:
    made = client.images.generate(model="gpt-image-1", prompt="A postcard of Oslo", n=2)
    assert made.data is not None and len(made.data) == 2
    assert base64.b64decode(made.data[0].b64_json or "") == b"image:A postcard of Oslo"
    assert made.usage is not None and made.usage.input_tokens == 4
    edited = client.images.edit(model="gpt-image-1", image=("in.png", b"\x89PNG-bytes"), prompt="add snow")
    assert edited.data is not None and base64.b64decode(edited.data[0].b64_json or "") == b"edit:add snow:10"
    parts = fake.form(fake.requests_to("/images/edits")[0])
    assert [(p.name, p.filename) for p in parts if p.filename] == [("image", "in.png")]


def test_speech_streams_audio(fake: FakeMedia, client: openai.OpenAI) -> None:
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input="Hei") as resp:
        assert resp.headers["content-type"] == "audio/mpeg"
        assert resp.headers.get("transfer-encoding") == "chunked"
        audio = b"".join(resp.iter_bytes())
    assert audio.startswith(b"ID3") and b"Hei|" in audio
    wav = client.audio.speech.create(model="tts-1", voice="alloy", input="x", response_format="wav")
    assert wav.response.headers["content-type"] == "audio/wav"


def test_transcriptions_and_translations_upload_the_file(fake: FakeMedia, client: openai.OpenAI) -> None:
    audio = b"RIFF" + bytes(range(256)) * 40  # binary, CR and LF included
    text = client.audio.transcriptions.create(model="whisper-1", file=("hello.wav", io.BytesIO(audio)))
    assert text.text == f"heard {len(audio)} bytes of hello.wav"
    parts = fake.form(fake.requests_to("/audio/transcriptions")[0])
    upload = next(p for p in parts if p.name == "file")
    assert upload.data == audio and upload.filename == "hello.wav"
    plain = client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", b"abc"), response_format="text")
    assert plain == "heard 3 bytes of a.mp3"
    with pytest.warns(DeprecationWarning):  # the SDK marks translations deprecated; the route still exists
        translated = client.audio.translations.create(model="whisper-1", file=("b.mp3", b"abcd"))
    assert translated.text == "translated 4 bytes of b.mp3"


def test_moderations_flag_when_scripted(fake: FakeMedia, client: openai.OpenAI) -> None:
    calm = client.moderations.create(model="omni-moderation-latest", input=["hello", "there"])
    assert [r.flagged for r in calm.results] == [False, False]
    fake.script(MFlag(("harassment", "violence")))
    hit = client.moderations.create(model="omni-moderation-latest", input="bad words")
    assert hit.results[0].flagged and hit.results[0].categories.violence and hit.results[0].categories.harassment
    assert not hit.results[0].categories.hate


def test_scripted_failures_surface_as_sdk_errors(fake: FakeMedia, client: openai.OpenAI) -> None:
    fake.script(MFail(500), MFail(429, message="slow down"))
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="m", input="x")
    with pytest.raises(openai.RateLimitError, match="slow down"):
        client.images.generate(model="gpt-image-1", prompt="p")
    fake.script(Refuse())
    with pytest.raises(openai.APIConnectionError):
        client.moderations.create(model="omni-moderation-latest", input="x")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=fake.base_url, api_key="wrong", max_retries=0).moderations.create(input="x")


def test_empty_and_cut_speech(fake: FakeMedia, client: openai.OpenAI) -> None:
    fake.script(MEmpty())
    empty = client.audio.speech.create(model="tts-1", voice="alloy", input="x")
    assert empty.content == b"" and empty.response.headers["content-type"] == "audio/mpeg"
    fake.script(MCut(chunks=1))
    with (
        pytest.raises(httpx2.TransportError),  # the SDK's transport: the body was cut
        client.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input="x") as resp,
    ):
        b"".join(resp.iter_bytes())
    assert fake.connections[-1].reset_by_us


def test_per_model_scripts_and_bad_bodies(fake: FakeMedia, client: openai.OpenAI) -> None:
    fake.script_for("whisper-1", MFail(503))
    with pytest.raises(openai.InternalServerError):
        client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", b"abc"))
    assert client.embeddings.create(model="other", input="x").data  # the other model was not scripted
    auth = {"authorization": f"Bearer {KEY}"}
    not_multipart = httpx.post(fake.base_url + "/audio/transcriptions", json={"model": "whisper-1"}, headers=auth)
    assert not_multipart.status_code == 400 and "multipart" in not_multipart.json()["error"]["message"]
    no_file = httpx.post(
        fake.base_url + "/audio/transcriptions", data={"model": "whisper-1"}, files={"other": ("x", b"1")}, headers=auth
    )
    assert no_file.status_code == 400 and "'file'" in no_file.json()["error"]["message"]


def test_strict_multipart_parser_rejects_sloppy_bodies() -> None:
    good = b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--b--\r\n'
    assert [(p.name, p.text) for p in parse_multipart("multipart/form-data; boundary=b", good)] == [
        ("model", "whisper-1")
    ]
    for bad in (good.replace(b"\r\n", b"\n"), good[:-8], b"preamble" + good):
        with pytest.raises(ValueError):
            parse_multipart("multipart/form-data; boundary=b", bad)
    assert to_base64([0.5]) == base64.b64encode(b"\x00\x00\x00?").decode()
