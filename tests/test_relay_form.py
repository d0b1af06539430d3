"""Re-emitting a client's multipart form for an upstream attempt (unigate/relay_form.py): the
declared length is exact, the body parses strictly, ``model`` is the attempt's, files are
replayable, and nothing a client writes in a name or type can add a header or a part."""

from __future__ import annotations

import asyncio
import io

from tests.fakes.media_wire import parse_multipart
from unigate.relay_form import Form, FormPart, encode_form


class MemoryUpload:
    """An ``Upload`` over bytes, counting reads (Starlette's UploadFile in the gateway)."""

    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)
        self.reads = 0

    async def read(self, size: int = -1) -> bytes:
        self.reads += 1
        return self._file.read(size)

    async def seek(self, offset: int) -> None:
        self._file.seek(offset)


def emit(form: Form, model: str, boundary: str = "bnd") -> tuple[int, bytes]:
    async def collect() -> tuple[int, bytes]:
        size, chunks = encode_form(form, boundary, model)
        return size, b"".join([c async for c in chunks])

    return asyncio.run(collect())


def test_exact_length_strict_parse_and_model_rewrite() -> None:
    audio = bytes(range(256)) * 700  # > 64 KiB: several reads
    upload = MemoryUpload(audio)
    form = Form(
        (
            FormPart("model", b"ears"),
            FormPart("file", filename="a b.wav", content_type="audio/wav", upload=upload, size=len(audio)),
            FormPart("language", b"nb"),
        )
    )
    size, body = emit(form, "whisper-1")
    assert size == len(body)
    parts = parse_multipart("multipart/form-data; boundary=bnd", body)
    assert [(p.name, p.filename, p.content_type) for p in parts] == [
        ("model", None, None),
        ("file", "a b.wav", "audio/wav"),
        ("language", None, None),
    ]
    assert parts[0].text == "whisper-1" and parts[1].data == audio and parts[2].text == "nb"
    assert upload.reads >= 3
    again_size, again = emit(form, "other", boundary="bnd")  # a failover replays the same file
    assert again_size == len(again) and parse_multipart("multipart/form-data; boundary=bnd", again)[1].data == audio
    assert form.field("model") == "ears" and form.has_file("file") and not form.has_file("image")


def test_names_and_types_cannot_inject_headers_or_parts() -> None:
    nasty = 'x"\r\nContent-Type: text/evil\r\n\r\n--bnd\r\nContent-Disposition: form-data; name="model"'
    form = Form(
        (
            FormPart(nasty, b"v"),
            FormPart(
                "file", filename=nasty, content_type="audio/wav\r\nX-Injected: 1", upload=MemoryUpload(b"1"), size=1
            ),
        )
    )
    size, body = emit(form, "m")
    assert size == len(body) and b"X-Injected" not in body.split(b"\r\n\r\n", 1)[0]
    parts = parse_multipart("multipart/form-data; boundary=bnd", body)
    assert len(parts) == 2 and parts[1].content_type == "application/octet-stream"
    assert "%0D%0A" in parts[0].name and "%22" in parts[0].name and parts[0].text == "v"
    assert all(p.name != "model" for p in parts)  # the injected "model" part never appeared
