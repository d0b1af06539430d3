"""``/v1/embeddings``, ``/v1/images/*``, ``/v1/audio/*`` and ``/v1/moderations``: the HTTP side.

Every handler runs the same steps as chat, in the same order: authenticate; read the body within
the endpoint's limit (http/bodies.py; multipart via http/multipart.py); light validation (the
fields routing needs — field-level checks are the upstream's, whose 4xx is passed through);
``plan_media`` (aliases, permissions: 404/403 as chat); the key's and the global rate limits
(``admit``); the moderation gate for keys that have it (image prompts, speech input); then the
relay, cancelled at once if the client disconnects. Each request gets one statistics record
(endpoint name, channel, attempts, usage, cost) via the Recorder, and ``x-request-id`` /
``x-unigate-channel`` / ``x-unigate-attempts`` headers, exactly like chat.

Answers keep the upstream's shape: JSON as JSON, ``text``/``srt``/``vtt`` transcripts with their
content type, and audio (or SSE) streamed with the upstream's content type as it arrives. A
stream that fails after its first bytes cannot carry an error: the response is cut (the client
sees a truncated body) and the record holds the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from unigate.dialects import openai_embed
from unigate.errors import BadRequest, UnigateError
from unigate.http.admission import admit
from unigate.http.bodies import limit_for, read_json
from unigate.http.chat import MAX_MODEL_NAME, served_headers
from unigate.http.disconnect import ClientDisconnected, DisconnectWatch, until_disconnected
from unigate.http.moderation import field_texts, screen
from unigate.http.multipart import UploadedForm, read_form
from unigate.http.recording import Pending, new_request_id
from unigate.http.responses import error_response
from unigate.http.state import Gateway
from unigate.relay_media import (
    EMBEDDINGS,
    IMAGE_EDITS,
    IMAGES,
    MODERATIONS,
    SPEECH,
    TRANSCRIPTIONS,
    TRANSLATIONS,
    Endpoint,
    MediaAnswer,
    MediaCall,
    MediaStream,
    plan_media,
    run_media,
)


def check_model(value: object, required: bool = True) -> str | None:
    """``model`` as routing needs it: a non-empty string of at most ``MAX_MODEL_NAME`` characters."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("'model' is required and must be a non-empty string.", param="model")
    if len(value) > MAX_MODEL_NAME:
        raise BadRequest(f"'model' is longer than {MAX_MODEL_NAME} characters.", param="model")
    return value


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{name}' is required and must be a non-empty string.", param=name)
    return value


# Each reader returns the call, the texts the moderation gate checks (with the field they come
# from) and the uploaded form to close afterwards (multipart endpoints).
Read = tuple[MediaCall, list[str], str, UploadedForm | None]
Reader = Callable[[Request, Gateway, Pending, Endpoint], Awaitable[Read]]


async def read_embeddings(request: Request, gateway: Gateway, pending: Pending, endpoint: Endpoint) -> Read:
    body = await read_json(request, limit_for(endpoint.route))
    pending.body = body
    model = check_model(body.get("model"))
    openai_embed.check_request(body)
    assert model is not None and pending.key is not None
    return MediaCall(endpoint, pending.key, model, pending.request_id, body=body), [], "input", None


async def read_images(request: Request, gateway: Gateway, pending: Pending, endpoint: Endpoint) -> Read:
    body = await read_json(request, limit_for(endpoint.route))
    pending.body = body
    model = check_model(body.get("model"))
    prompt = _text(body, "prompt")
    assert model is not None and pending.key is not None
    return MediaCall(endpoint, pending.key, model, pending.request_id, body=body), field_texts(prompt), "prompt", None


async def read_speech(request: Request, gateway: Gateway, pending: Pending, endpoint: Endpoint) -> Read:
    body = await read_json(request, limit_for(endpoint.route))
    pending.body = body
    model = check_model(body.get("model"))
    text = _text(body, "input")
    assert model is not None and pending.key is not None
    return MediaCall(endpoint, pending.key, model, pending.request_id, body=body), field_texts(text), "input", None


async def read_moderations(request: Request, gateway: Gateway, pending: Pending, endpoint: Endpoint) -> Read:
    body = await read_json(request, limit_for(endpoint.route))
    pending.body = body
    model = check_model(body.get("model"), required=False) or gateway.runtime.moderation_model
    value = body.get("input")
    if not (isinstance(value, str) and value) and not (isinstance(value, list) and value):
        raise BadRequest("'input' is required: a non-empty string or array.", param="input")
    assert pending.key is not None
    return MediaCall(endpoint, pending.key, model, pending.request_id, body=body), [], "input", None


def _form_reader(file_fields: tuple[str, ...], prompt: bool) -> Reader:
    async def read(request: Request, gateway: Gateway, pending: Pending, endpoint: Endpoint) -> Read:
        uploaded = await read_form(request, limit_for(endpoint.route))
        try:
            form = uploaded.form
            model = check_model(form.field("model"))
            if not form.has_file(*file_fields):
                raise BadRequest(f"'{file_fields[0]}' is required: upload it as a file part.", param=file_fields[0])
            texts: list[str] = []
            if prompt:
                texts = field_texts(form.field("prompt"))
                if not texts:
                    raise BadRequest("'prompt' is required and must be a non-empty string.", param="prompt")
        except BaseException:
            await uploaded.close()
            raise
        assert model is not None and pending.key is not None
        return MediaCall(endpoint, pending.key, model, pending.request_id, form=form), texts, "prompt", uploaded

    return read


async def serve(request: Request, endpoint: Endpoint, reader: Reader) -> Response:
    """Authenticate, read, plan, admit, gate, relay and record one request (see the module docstring)."""
    gateway: Gateway = request.app.state.gateway
    pending = Pending(new_request_id(), endpoint.name)
    headers = {"x-request-id": pending.request_id}
    call: MediaCall | None = None
    uploaded: UploadedForm | None = None
    try:
        try:
            pending.key = gateway.keys.authenticate(request.headers)
            call, texts, param, uploaded = await reader(request, gateway, pending, endpoint)
            pending.model = call.model
            plan = await plan_media(gateway.relay, call)
            limit_headers, pending.token_charges = await admit(
                gateway.limiter, gateway.runtime, call.key, call.model, call.body or {}, gateway.credits
            )
            headers.update(limit_headers)
            if call.key.moderation and texts:
                await until_disconnected(request.receive, screen(gateway, call.key, texts, pending, param))
            result = await until_disconnected(request.receive, run_media(gateway.relay, call, plan))
        except UnigateError as err:
            gateway.recorder.finish(pending, err.http_status(), call.served if call else None, err)
            return error_response(err, headers)
        except ClientDisconnected:
            gateway.recorder.finish(pending, 499, call.served if call else None)
            return Response(status_code=499)
        headers.update(served_headers(result.served, pending.request_id))
        if isinstance(result, MediaAnswer):
            gateway.recorder.finish(pending, 200, result.served)
            return Response(result.body, headers=headers, media_type=result.content_type)
        closing, uploaded = uploaded, None  # the stream deletes the form when it ends
        return ByteStream(result, headers, pending, gateway, closing)
    finally:
        if uploaded is not None:
            await uploaded.close()


class ByteStream(Response):
    """A committed byte stream sent with the upstream's content type, written straight to the
    ASGI ``send`` under a disconnect watch (like ``SSEResponse``), and recorded when it ends —
    completed (200), failed upstream (that error's status) or cut by the client (499) — whether
    or not a byte was sent. An upstream failure after the first bytes ends the response without
    its final message: the server closes the connection, so the client sees a truncated body
    rather than a complete-looking one. The uploaded form, if any, is deleted at the end."""

    def __init__(
        self,
        result: MediaStream,
        headers: dict[str, str],
        pending: Pending,
        gateway: Gateway,
        uploaded: UploadedForm | None,
    ) -> None:
        self.result = result
        self.pending = pending
        self.gateway = gateway
        self.uploaded = uploaded
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", result.content_type.encode("latin-1"))] + [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        result, pending = self.result, self.pending
        completed = False
        watch: DisconnectWatch | None = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            watch = DisconnectWatch(receive)
            async for chunk in result.chunks:
                if pending.ttft_ms is None:
                    pending.first_byte()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            completed = True
        except asyncio.CancelledError:
            if watch is None or not watch.absorb():
                raise
        except UnigateError:
            pass  # the upstream failed after the commit: returning without the final message cuts the response
        finally:
            if watch is not None:
                watch.close()
            await result.chunks.aclose()
            error = result.served.stream_error
            status = error.http_status() if error is not None else 200 if completed else 499
            self.gateway.recorder.finish(pending, status, result.served, error)
            if self.uploaded is not None:
                await self.uploaded.close()


def _handler(endpoint: Endpoint, reader: Reader) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        return await serve(request, endpoint, reader)

    handle.__name__ = endpoint.route.strip("/").replace("/", "_").replace("v1_", "", 1)
    return handle


HANDLERS: tuple[tuple[Endpoint, Reader], ...] = (
    (EMBEDDINGS, read_embeddings),
    (IMAGES, read_images),
    (IMAGE_EDITS, _form_reader(("image", "image[]"), prompt=True)),
    (SPEECH, read_speech),
    (TRANSCRIPTIONS, _form_reader(("file",), prompt=False)),
    (TRANSLATIONS, _form_reader(("file",), prompt=False)),
    (MODERATIONS, read_moderations),
)


def media_routes() -> list[Route]:
    """Each endpoint under ``/v1/…`` and under its bare path (as chat is)."""
    routes: list[Route] = []
    for endpoint, reader in HANDLERS:
        handler = _handler(endpoint, reader)
        routes.append(Route(endpoint.route, handler, methods=["POST"]))
        routes.append(Route(endpoint.route.removeprefix("/v1"), handler, methods=["POST"]))
    return routes
