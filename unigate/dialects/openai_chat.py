"""OpenAI Chat Completions: the gateway's inbound API and the dialect of OpenAI-compatible
upstreams (wire-formats.md §1). Pure: no I/O, no clock, no randomness (ids and ``created`` are
the caller's).

This module is the public face; the work is split by concern:

* ``openai_chat_parse`` — ``parse_request``: validate a client body into a ``ChatRequest``
  (its docstring lists every decision and the normalisations of a round trip);
* ``openai_chat_request`` — ``encode_request``: ``ChatRequest`` → upstream body;
* ``openai_chat_response`` — ``decode_response`` / ``encode_response`` and usage;
* ``openai_chat_errors`` — ``decode_error``: an error answer → the classified ``UpstreamError``;
* ``openai_chat_stream`` — ``OpenAIStreamDecoder`` (upstream SSE → events) and
  ``StreamEncoder`` (events → client SSE frames, in-band errors).

``DIALECT`` is the ``UpstreamDialect`` named ``"openai"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unigate.dialects.base import SSE_MEDIA_TYPE, DialectOptions, Framer, StreamDecoder, UpstreamDialect, sse_framer
from unigate.dialects.openai_chat_errors import decode_error
from unigate.dialects.openai_chat_parse import DIALECT_NAME, REFUSED_FIELDS, parse_request
from unigate.dialects.openai_chat_request import encode_request
from unigate.dialects.openai_chat_response import decode_response, decode_usage, encode_response, encode_usage
from unigate.dialects.openai_chat_stream import DONE_FRAME, OpenAIStreamDecoder, StreamEncoder
from unigate.errors import UnigateError, UpstreamError
from unigate.ir import ChatRequest, ChatResponse


def stream_decoder(options: DialectOptions) -> OpenAIStreamDecoder:
    """A fresh decoder for one upstream stream."""
    return OpenAIStreamDecoder(options)


def encode_error(err: UnigateError) -> dict[str, Any]:
    """The JSON body of an error answer to a client: ``{"error": {message, type, param, code}}``
    (the status is ``err.http_status()``, extra headers ``err.headers()``)."""
    return err.to_openai()


class OpenAIChatDialect:
    """``UpstreamDialect`` for OpenAI-compatible providers; stateless, one shared instance."""

    name: str = DIALECT_NAME

    def encode_request(self, request: ChatRequest, options: DialectOptions) -> dict[str, Any]:
        return encode_request(request, options)

    def decode_response(self, body: bytes, options: DialectOptions) -> ChatResponse:
        return decode_response(body, options)

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return decode_error(status, headers, body)

    def stream_decoder(self, options: DialectOptions) -> StreamDecoder:
        return OpenAIStreamDecoder(options)

    stream_media_type = SSE_MEDIA_TYPE

    def framer(self) -> Framer:
        return sse_framer()


DIALECT: UpstreamDialect = OpenAIChatDialect()

__all__ = [
    "DIALECT",
    "DIALECT_NAME",
    "DONE_FRAME",
    "REFUSED_FIELDS",
    "OpenAIChatDialect",
    "OpenAIStreamDecoder",
    "StreamEncoder",
    "decode_error",
    "decode_response",
    "decode_usage",
    "encode_error",
    "encode_request",
    "encode_response",
    "encode_usage",
    "parse_request",
    "stream_decoder",
]
