"""The Gemini ``generateContent`` dialect: Google AI Studio and Vertex AI (same body, other URLs).

The provider layer picks the URL (``models/{m}:generateContent`` or
``:streamGenerateContent?alt=sse``) and the credentials; this module only translates. It is split
by concern:

* ``gemini_request``  — IR → request body (message merging, tool id → name table, thought
  signatures, generationConfig/extra-field policy);
* ``gemini_response`` — response body → IR (parts, finish reasons, usage, blocked prompts);
* ``gemini_stream``   — the SSE stream state machine;
* ``gemini_errors``   — Google RPC error bodies → the unigate error tree.

Each module's docstring lists its decisions. Docs: https://ai.google.dev/api/generate-content ,
wire-formats.md §3 (Gemini API) and §4 (Vertex AI).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unigate.dialects.base import SSE_MEDIA_TYPE, DialectOptions, Framer, UpstreamDialect, sse_framer
from unigate.dialects.gemini_errors import decode_error as _decode_error
from unigate.dialects.gemini_request import SIGNATURE_FALLBACK_SETTING
from unigate.dialects.gemini_request import encode_request as _encode_request
from unigate.dialects.gemini_response import decode_response as _decode_response
from unigate.dialects.gemini_stream import GeminiStreamDecoder
from unigate.errors import UpstreamError
from unigate.ir import ChatRequest, ChatResponse

__all__ = ["DIALECT", "SIGNATURE_FALLBACK_SETTING", "GeminiDialect", "GeminiStreamDecoder"]


class GeminiDialect:
    """``UpstreamDialect`` for Gemini; stateless, one shared instance (``DIALECT``)."""

    name = "gemini"

    def encode_request(self, request: ChatRequest, options: DialectOptions) -> dict[str, Any]:
        return _encode_request(request, options)

    def decode_response(self, body: bytes, options: DialectOptions) -> ChatResponse:
        return _decode_response(body, options)

    def decode_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return _decode_error(status, headers, body)

    def stream_decoder(self, options: DialectOptions) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(options)

    stream_media_type = SSE_MEDIA_TYPE

    def framer(self) -> Framer:
        return sse_framer()


DIALECT: UpstreamDialect = GeminiDialect()
