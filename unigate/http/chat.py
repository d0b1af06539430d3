"""``POST /v1/chat/completions``: authenticate, validate, relay, write JSON or SSE.

Validation here is the light check the fast path needs (object body, ``model``, ``messages``,
``stream``); field-level validation of everything else is ``dialects.openai_chat.parse_request``
when a route translates, and the upstream's own 400 (passed through) when it does not.

A client that disconnects cancels the upstream request at once: for streams Starlette cancels
the response task; for plain requests ``until_disconnected`` races the relay against the
ASGI ``http.disconnect`` message.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from unigate.errors import BadRequest, UnigateError
from unigate.http.responses import JSONBytes, error_response, read_json_object
from unigate.http.state import Gateway
from unigate.relay import ChatCall, Complete, Served

T = TypeVar("T")

MAX_MODEL_NAME = 256
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class ClientDisconnected(Exception):
    """The client went away before the answer was ready."""


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Run ``work``; cancel it if the client disconnects first (raises ClientDisconnected)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        done, _ = await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watcher.cancel()
        raise
    if task in done:
        watcher.cancel()
        return task.result()
    task.cancel()
    raise ClientDisconnected()


async def _wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


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


async def chat_completions(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    request_id = os.urandom(12).hex()
    try:
        key = gateway.keys.authenticate(request.headers)
        body = await read_json_object(request)
        model, stream = validate_chat(body)
        call = ChatCall(key=key, body=body, model=model, stream=stream, request_id=request_id)
        result = await until_disconnected(request, gateway.relay.chat(call))
    except UnigateError as err:
        return error_response(err, {"x-request-id": request_id})
    except ClientDisconnected:
        return Response(status_code=499)
    headers = served_headers(result.served, request_id)
    if isinstance(result, Complete):
        return JSONBytes(result.body, headers=headers)
    headers.update(SSE_HEADERS)
    return StreamingResponse(result.frames, media_type="text/event-stream", headers=headers)
