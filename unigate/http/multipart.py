"""Reading a client's ``multipart/form-data`` upload (transcriptions, translations, image edits).

Approach: the body is parsed incrementally as it arrives (Starlette's ``MultiPartParser`` over
python-multipart), fed by ``capped_stream``, so a body over the endpoint's limit is a 413 the
moment the limit is crossed and the rest is never read. Plain fields are kept in memory (at most
1 MiB each); each file goes to a spooled temporary file (memory up to 1 MiB, then disk) — the one
copy of the upload the gateway holds. The relay then re-emits the form for each attempt from that
copy (relay_form.py), rewriting only ``model``; a failover re-sends the same bytes. Parsing (not
byte-for-byte forwarding) is needed because routing needs ``model`` before anything is sent, a
client may put ``model`` after the file, and the upstream name may differ from the alias.

Limits against abuse (reliability-matrix A22): a boundary longer than RFC 2046's 70 characters is
refused, at most ``MAX_FILES`` files and ``MAX_FIELDS`` fields; a malformed body is a 400.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from unigate.errors import BadRequest, UnsupportedMediaType
from unigate.http.bodies import capped_stream
from unigate.relay_form import Form, FormPart

MAX_FILES = 32
MAX_FIELDS = 64
MAX_FIELD_BYTES = 1024 * 1024
MAX_BOUNDARY = 70


@dataclass(slots=True)
class UploadedForm:
    """The parsed form and the spooled files behind it; ``close`` deletes them."""

    form: Form
    _data: FormData

    async def close(self) -> None:
        await self._data.close()


def _boundary(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "boundary":
            return value.strip().strip('"')
    return None


async def read_form(request: Request, limit: int) -> UploadedForm:
    """Parse the request's multipart body within ``limit`` bytes (413 past it, 415 for another
    content type, 400 for a malformed body)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        raise UnsupportedMediaType(
            f"Content-Type '{content_type.split(';', 1)[0][:100]}' is not supported here; send multipart/form-data."
        )
    boundary = _boundary(content_type)
    if not boundary or len(boundary) > MAX_BOUNDARY:
        raise BadRequest(f"The multipart boundary is missing or longer than {MAX_BOUNDARY} characters.")
    parser = MultiPartParser(
        request.headers,
        capped_stream(request, limit),
        max_files=MAX_FILES,
        max_fields=MAX_FIELDS,
        max_part_size=MAX_FIELD_BYTES,
    )
    try:
        data = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"Invalid multipart body: {exc.message}", code="invalid_multipart") from None
    parts: list[FormPart] = []
    for name, value in data.multi_items():
        if isinstance(value, UploadFile):
            parts.append(
                FormPart(
                    name,
                    filename=value.filename,
                    content_type=value.content_type,
                    upload=value,
                    size=value.size or 0,
                )
            )
        else:
            parts.append(FormPart(name, value=value.encode("utf-8")))
    return UploadedForm(Form(tuple(parts)), data)
