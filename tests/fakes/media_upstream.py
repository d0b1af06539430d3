"""A fake OpenAI media upstream: embeddings, images, audio and moderations on a real loopback
HTTP/1.1 server (wire-formats.md §9).

    with FakeMedia(api_key="sk-m") as fake:
        fake.script(MFail(500))
        client = openai.OpenAI(base_url=fake.base_url, api_key="sk-m", max_retries=0)
        client.embeddings.create(model="text-embedding-3-small", input="hi")   # -> 500

Routes (any prefix; the SDK uses ``/v1/...``), all ``POST``: ``…/embeddings``,
``…/images/generations``, ``…/images/edits`` (multipart), ``…/audio/speech`` (chunked audio bytes,
``audio/mpeg`` for mp3), ``…/audio/transcriptions`` and ``…/audio/translations`` (multipart;
``response_format`` ``json`` or ``text``/``srt``/``vtt`` as ``text/plain``), ``…/moderations``.
Anything else is a 404. ``azure=True`` serves Azure OpenAI's forms instead (openai_azure.py
``media_route``): ``/openai/deployments/{deployment}/{route}`` and ``/models/embeddings`` (both
need ``api-version`` in the query) and ``/openai/v1/{route}``; no moderations; the key in
``api-key`` (or ``Authorization: Bearer`` on the v1 form); the deployment in the path is the
model. Checked before a behaviour is consumed: the key (``Authorization: Bearer``
when ``api_key`` is set; 401), the body (JSON object, or a strictly well-formed multipart body
with ``model`` and its file part; 400) and, for JSON, ``model``. Behaviours are consumed one per
accepted request, per-model queues first (the ``model`` field, JSON or multipart).

Behaviours: ``MEcho`` (the endpoint's normal answer; the default), ``MFail`` (an error status),
``MEmpty`` (200 with the endpoint's content type and no body), ``MFlag`` (moderations: every input
flagged in the given categories), ``MCut`` (speech: some audio, then a reset), and the generic
``Hang``/``Gate``/``Delay``/``Refuse``/``Raw``/``RawStream`` from ``loopback``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.http11 import Conn, HttpRequest
from tests.fakes.loopback import (
    Delay,
    Exchange,
    Gate,
    Hang,
    LoopbackFake,
    Raw,
    RawStream,
    RecordedRequest,
    Refuse,
    run_generic,
)
from tests.fakes.media_wire import (
    AUDIO_TYPES,
    Part,
    embedding_items,
    embeddings_json,
    files,
    form_field,
    images_json,
    moderation_json,
    parse_multipart,
    speech_bytes,
    words,
)
from tests.fakes.openai_azure import ACCESS_DENIED, RESOURCE_NOT_FOUND, api_version, media_route
from tests.fakes.openai_wire import default_error, dumps

__all__ = [
    "Delay",
    "FakeMedia",
    "Gate",
    "Hang",
    "MCut",
    "MEcho",
    "MEmpty",
    "MFail",
    "MFlag",
    "Raw",
    "RawStream",
    "Refuse",
]

ENDPOINTS = (
    "/embeddings",
    "/images/generations",
    "/images/edits",
    "/audio/speech",
    "/audio/transcriptions",
    "/audio/translations",
    "/moderations",
)
MULTIPART = ("/images/edits", "/audio/transcriptions", "/audio/translations")
FILE_FIELDS = {
    "/images/edits": ("image", "image[]"),
    "/audio/transcriptions": ("file",),
    "/audio/translations": ("file",),
}


@dataclass(frozen=True)
class MEcho:
    """The endpoint's normal answer."""


@dataclass(frozen=True)
class MFail:
    """An HTTP error: ``body=None`` → OpenAI error JSON for the status (``message`` overrides)."""

    status: int
    message: str | None = None
    body: bytes | None = None
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MEmpty:
    """200 with the endpoint's content type and an empty body (uni-api's early speech answer)."""


@dataclass(frozen=True)
class MFlag:
    """Moderations: every input flagged in ``categories``."""

    categories: tuple[str, ...] = ("violence",)


@dataclass(frozen=True)
class MCut:
    """Speech: ``chunks`` chunks of audio, then a reset (a stream that dies after its commit)."""

    chunks: int = 1


MBehaviour = MEcho | MFail | MEmpty | MFlag | MCut | Hang | Gate | Delay | Refuse | Raw | RawStream


@dataclass
class _Request:
    route: str
    body: Any = None
    parts: list[Part] = field(default_factory=list)
    deployment: str | None = None

    def get(self, name: str) -> Any:
        if name == "model" and self.deployment is not None:
            return self.deployment
        if self.route in MULTIPART:
            return form_field(self.parts, name)
        return self.body.get(name) if isinstance(self.body, dict) else None


class FakeMedia(LoopbackFake[MBehaviour]):
    """The fake on ``host:port``; ``base_url`` (``url + "/v1"``) is what the SDK and unigate take.
    ``speech_chunks``: how many HTTP chunks a speech answer is written in; ``float_only``: answer
    embeddings as arrays whatever ``encoding_format`` asked (as some compatible servers do)."""

    name = "FakeMedia"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        default: MBehaviour | None = None,
        speech_chunks: int = 3,
        float_only: bool = False,
        embedding_dim: int = 4,
        azure: bool = False,
    ) -> None:
        self.api_key = api_key
        self.azure = azure
        self.speech_chunks = speech_chunks
        self.float_only = float_only
        self.embedding_dim = embedding_dim
        super().__init__(default=default if default is not None else MEcho(), host=host, port=port)
        self.base_url = self.url + "/v1"

    def requests_to(self, route: str) -> list[RecordedRequest]:
        """Requests whose path ends with ``route`` (e.g. ``"/audio/speech"``)."""
        return [r for r in self.requests if r.path.rstrip("/").endswith(route)]

    @staticmethod
    def form(request: RecordedRequest) -> list[Part]:
        """The parts of a recorded multipart request."""
        return parse_multipart(request.headers.get("content-type", ""), request.body)

    async def _serve(self, req: HttpRequest, conn: Conn) -> bool:
        recorded = self._record(req, conn)
        ex = Exchange(conn, req.keep_alive, self._parker(conn), self._new_hang)
        route: str | None
        deployment: str | None = None
        if self.azure:
            if self.api_key is not None and self.api_key not in (
                req.headers.get("api-key"),
                req.headers.get("authorization", "").removeprefix("Bearer "),
            ):
                return await ex.respond(401, dumps(ACCESS_DENIED))
            found = media_route(req.path)
            if req.method != "POST" or found is None or (found[1].needs_version and not api_version(req.query)):
                return await ex.respond(404, dumps(RESOURCE_NOT_FOUND))
            route, deployment = found[0], found[1].deployment
        else:
            if self.api_key is not None and req.headers.get("authorization") != f"Bearer {self.api_key}":
                return await _error(ex, 401, "Incorrect API key provided")
            route = next((r for r in ENDPOINTS if req.path.rstrip("/").endswith(r)), None)
            if req.method != "POST" or route is None:
                return await _error(ex, 404, f"Unknown request URL: {req.method} {req.path}")
        request = _Request(route, deployment=deployment)
        if route in MULTIPART:
            try:
                request.parts = parse_multipart(req.headers.get("content-type", ""), req.body)
            except ValueError as exc:
                return await _error(ex, 400, f"malformed multipart body: {exc}")
            if not files(request.parts, *FILE_FIELDS[route]):
                return await _error(ex, 400, f"'{FILE_FIELDS[route][0]}' file part is required")
        else:
            if not isinstance(recorded.json, dict):
                return await _error(ex, 400, "We could not parse the JSON body of your request.")
            request.body = recorded.json
        model = request.get("model")
        if not isinstance(model, str) or not model:
            return await _error(ex, 400, "you must provide a model parameter")
        return await self._run(self._next_behaviour(model), ex, request)

    async def _run(self, b: object, ex: Exchange, request: _Request) -> bool:
        async def then(x: object | None) -> bool:
            return await self._run(MEcho() if x is None else x, ex, request)

        generic = await run_generic(b, ex, then)
        if generic is not None:
            return generic
        if isinstance(b, MFail):
            body = b.body if b.body is not None else dumps(default_error(b.status, b.message))
            return await ex.respond(b.status, body, b.content_type, b.headers)
        if isinstance(b, MEmpty):
            return await ex.respond(200, b"", _content_type(request))
        if isinstance(b, MCut):
            audio = speech_bytes(str(request.get("input")))
            await ex.stream_head(content_type=_content_type(request))
            for i in range(b.chunks):
                await ex.conn.send_chunk(audio[i * 64 : (i + 1) * 64])
            await ex.conn.flush()
            ex.conn.reset()
            return False
        flagged = b.categories if isinstance(b, MFlag) else ()
        return await self._answer(ex, request, flagged)

    async def _answer(self, ex: Exchange, request: _Request, flagged: tuple[str, ...]) -> bool:
        route, model = request.route, str(request.get("model"))
        if route == "/embeddings":
            try:
                items = embedding_items(request.get("input"))
            except ValueError as exc:
                return await _error(ex, 400, str(exc))
            dims = int(request.get("dimensions") or self.embedding_dim)
            encoding = "float" if self.float_only else str(request.get("encoding_format") or "float")
            return await ex.respond(200, dumps(embeddings_json(model, items, dims, encoding)))
        if route == "/images/generations":
            return await ex.respond(200, dumps(images_json(str(request.get("prompt")), int(request.get("n") or 1))))
        if route == "/images/edits":
            size = sum(len(p.data) for p in files(request.parts, "image", "image[]"))
            return await ex.respond(200, dumps(images_json(f"{request.get('prompt')}:{size}", 1, tag="edit")))
        if route == "/audio/speech":
            audio = speech_bytes(str(request.get("input")))
            await ex.stream_head(content_type=_content_type(request))
            step = -(-len(audio) // self.speech_chunks)
            for i in range(0, len(audio), step):
                await ex.conn.send_chunk(audio[i : i + step])
            return await ex.end_stream()
        if route in ("/audio/transcriptions", "/audio/translations"):
            upload = files(request.parts, "file")[0]
            verb = "heard" if route == "/audio/transcriptions" else "translated"
            text = f"{verb} {len(upload.data)} bytes of {upload.filename}"
            if (request.get("response_format") or "json") != "json":
                return await ex.respond(200, text.encode(), "text/plain; charset=utf-8")
            usage = {
                "type": "tokens",
                "input_tokens": 14,
                "output_tokens": words(text),
                "total_tokens": 14 + words(text),
            }
            return await ex.respond(200, dumps({"text": text, "usage": usage}))
        value = request.get("input")
        inputs = [value] if isinstance(value, str) else [str(v) for v in value or []]
        return await ex.respond(200, dumps(moderation_json(inputs, flagged)))


def _content_type(request: _Request) -> str:
    if request.route == "/audio/speech":
        return AUDIO_TYPES.get(str(request.get("response_format") or "mp3"), "application/octet-stream")
    return "application/json"


async def _error(ex: Exchange, status: int, message: str) -> bool:
    return await ex.respond(status, dumps(default_error(status, message)))
