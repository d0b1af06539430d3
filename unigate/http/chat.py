"""``POST /v1/chat/completions``: authenticate, validate, relay, write JSON or SSE.

Validation here is the light check the fast path needs (object body, ``model``, ``messages``,
``stream``); field-level validation of everything else is ``dialects.openai_chat.parse_request``
when a route translates, and the upstream's own 400 (passed through) when it does not.
Keys with ``ENABLE_MODERATION`` have their users' text checked after the rate limits and before
routing (http/moderation.py); other keys pay one attribute check.

A client that disconnects cancels the upstream request at once: for streams Starlette cancels
the response (``SSEResponse``); for plain requests ``until_disconnected`` cancels the relay when
the ASGI ``http.disconnect`` message arrives (http/disconnect.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from unigate.errors import BadRequest, UnigateError
from unigate.http.admission import admit
from unigate.http.disconnect import ClientDisconnected, SSEResponse, until_disconnected
from unigate.http.moderation import chat_texts, screen
from unigate.http.recording import Pending, new_request_id
from unigate.http.responses import JSONBytes, error_response, read_json_object
from unigate.http.state import Gateway
from unigate.relay import ChatCall, Complete, Served
from unigate.relay_streams import error_frames
from unigate.routing.plan import Plan

T = TypeVar("T")

MAX_MODEL_NAME = 256
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
KEEPALIVE_FRAME = b": keepalive\n\n"
access_log = logging.getLogger("unigate.access")


def validate_chat(body: dict[str, Any]) -> tuple[str, bool]:
    """The fields the router needs, checked: (model, stream)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("'model' is required and must be a non-empty string.", param="model")
    if len(model) > MAX_MODEL_NAME:
        raise BadRequest(f"'model' is longer than {MAX_MODEL_NAME} characters.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array of messages.", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(f"messages[{i}] must be an object with a 'role'.", param=f"messages[{i}]")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean.", param="stream")
    return model, stream


def served_headers(served: Served, request_id: str) -> dict[str, str]:
    return {
        "x-request-id": request_id,
        "x-unigate-channel": served.channel,
        "x-unigate-attempts": str(len(served.attempts)),
    }


async def with_keepalive(
    gateway: Gateway, call: ChatCall, plan: Plan, interval: float, pending: Pending
) -> AsyncIterator[bytes]:
    """A stream whose headers go out at once: SSE comments every ``interval`` seconds until
    the relay commits, then the relayed frames. Attempts that fail meanwhile still fail over
    invisibly (comments are not content); if all fail, the error arrives in-band."""
    task = asyncio.ensure_future(gateway.relay.chat(call, plan))
    try:
        while True:
            done, _ = await asyncio.wait((task,), timeout=interval)
            if done:
                break
            yield KEEPALIVE_FRAME
        try:
            result = task.result()
        except UnigateError as err:
            gateway.recorder.finish(pending, err.http_status(), call.served, err)
            for frame in error_frames(err):
                yield frame
            return
        if isinstance(result, Complete):
            gateway.recorder.finish(pending, 200, result.served)
            yield b"data: " + result.body + b"\n\n"
            return
        async for frame in recorded(result.frames, result.served, pending, gateway):
            yield frame
    finally:
        if not task.done():
            task.cancel()


async def recorded(
    frames: AsyncIterator[bytes], served: Served, pending: Pending, gateway: Gateway
) -> AsyncIterator[bytes]:
    """Pass a committed stream through, noting the time to first byte, and record it when it
    ends — completed, ended by an in-band error, or cut by a client disconnect (499; the
    tokens seen so far are still recorded, estimated when the provider sent no usage)."""
    completed = False
    try:
        async for frame in frames:
            if pending.ttft_ms is None:
                pending.first_byte()
            yield frame
        completed = True
    finally:
        error = served.stream_error
        status = 200 if completed else 499
        if error is not None:
            status = error.http_status()
        gateway.recorder.finish(pending, status, served, error)
        if not completed:
            aclose = getattr(frames, "aclose", None)
            if aclose is not None:
                await aclose()


async def chat_completions(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    pending = Pending(new_request_id(), "POST /v1/chat/completions")
    headers = {"x-request-id": pending.request_id}
    call: ChatCall | None = None
    try:
        pending.key = gateway.keys.authenticate(request.headers)
        body = await read_json_object(request)
        pending.body = body
        model, stream = validate_chat(body)
        pending.model, pending.stream = model, stream
        call = ChatCall(key=pending.key, body=body, model=model, stream=stream, request_id=pending.request_id)
        plan = await gateway.relay.plan_shared(call)
        limit_headers, pending.token_charges = await admit(
            gateway.limiter, gateway.runtime, call.key, model, body, gateway.credits
        )
        headers.update(limit_headers)
        if call.key.moderation:
            await until_disconnected(request.receive, screen(gateway, call.key, chat_texts(body), pending, "messages"))
        if stream and plan.keepalive is not None:
            headers.update(SSE_HEADERS)
            return SSEResponse(with_keepalive(gateway, call, plan, plan.keepalive, pending), headers)
        result = await until_disconnected(request.receive, gateway.relay.chat(call, plan))
    except UnigateError as err:
        gateway.recorder.finish(pending, err.http_status(), call.served if call else None, err)
        return error_response(err, headers)
    except ClientDisconnected:
        gateway.recorder.finish(pending, 499, call.served if call else None)
        return Response(status_code=499)
    headers.update(served_headers(result.served, pending.request_id))
    if isinstance(result, Complete):
        gateway.recorder.finish(pending, 200, result.served)
        return JSONBytes(result.body, headers=headers)
    headers.update(SSE_HEADERS)
    return SSEResponse(recorded(result.frames, result.served, pending, gateway), headers)
