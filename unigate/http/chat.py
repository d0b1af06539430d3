"""``POST /v1/chat/completions``: authenticate, validate, relay, write JSON or SSE.

Validation here is the light check the fast path needs (object body, ``model``, ``messages``,
``stream``); field-level validation of everything else is ``dialects.openai_chat.parse_request``
when a route translates, and the upstream's own 400 (passed through) when it does not.

A client that disconnects cancels the upstream request at once: for streams Starlette cancels
the response (``SSEResponse``); for plain requests ``until_disconnected`` cancels the relay when
the ASGI ``http.disconnect`` message arrives (http/disconnect.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from unigate.config.compile import ClientKey
from unigate.errors import BadRequest, UnigateError
from unigate.http.disconnect import ClientDisconnected, SSEResponse, until_disconnected
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


def log_request(
    request_id: str, key: ClientKey | None, model: str | None, served: Served | None, status: int, started: float
) -> None:
    """One JSON line per request (never a key: the client key appears as its label)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    record: dict[str, Any] = {
        "request_id": request_id,
        "key": key.label if key else None,
        "model": model,
        "status": status,
        "ms": round((time.perf_counter() - started) * 1000, 2),
    }
    if served is not None:
        record["channel"] = served.channel or None
        record["attempts"] = [f"{a.channel}:{a.outcome}" for a in served.attempts]
    access_log.info("%s", orjson.dumps(record).decode())


async def with_keepalive(
    gateway: Gateway, call: ChatCall, plan: Plan, interval: float, started: float
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
            log_request(call.request_id, call.key, call.model, None, err.http_status(), started)
            for frame in error_frames(err):
                yield frame
            return
        log_request(call.request_id, call.key, call.model, result.served, 200, started)
        if isinstance(result, Complete):
            yield b"data: " + result.body + b"\n\n"
            return
        async for frame in result.frames:
            yield frame
    finally:
        if not task.done():
            task.cancel()


async def chat_completions(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    request_id = os.urandom(12).hex()
    started = time.perf_counter()
    key: ClientKey | None = None
    model: str | None = None
    try:
        key = gateway.keys.authenticate(request.headers)
        body = await read_json_object(request)
        model, stream = validate_chat(body)
        call = ChatCall(key=key, body=body, model=model, stream=stream, request_id=request_id)
        plan = gateway.relay.plan(call)
        if stream and plan.keepalive is not None:
            headers = {"x-request-id": request_id, **SSE_HEADERS}
            frames = with_keepalive(gateway, call, plan, plan.keepalive, started)
            return SSEResponse(frames, headers)
        result = await until_disconnected(request.receive, gateway.relay.chat(call, plan))
    except UnigateError as err:
        log_request(request_id, key, model, None, err.http_status(), started)
        return error_response(err, {"x-request-id": request_id})
    except ClientDisconnected:
        log_request(request_id, key, model, None, 499, started)
        return Response(status_code=499)
    log_request(request_id, key, model, result.served, 200, started)
    headers = served_headers(result.served, request_id)
    if isinstance(result, Complete):
        return JSONBytes(result.body, headers=headers)
    headers.update(SSE_HEADERS)
    return SSEResponse(result.frames, headers)
