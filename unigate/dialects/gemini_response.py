"""Gemini ``GenerateContentResponse`` → IR: parts, finish reasons, usage; shared by the stream decoder.

Docs: https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse (wire-formats.md §0, §3).

* **Parts.** A ``thought: true`` part is reasoning, never answer text → ``Reasoning(text, signature)``.
  A ``thoughtSignature`` on any other part becomes an empty ``Reasoning("", signature)`` right before
  the part it rode on, so ``encode_request`` can put it back on the same part. ``text`` → ``Text``
  (empty texts skipped). Every ``functionCall`` → ``ToolCall`` with ``arguments`` = compact JSON of
  ``args`` and ``id`` = the part's own ``id`` when Gemini sent one, else ``call_<responseId>_<n>``
  (``call_<n>_<name>`` without a ``responseId``), ``n`` counting calls from 0 within the response:
  unique per response, deterministic, and the same in a stream and a non-stream answer. Other part
  kinds (``executableCode``, ``inlineData`` output, …) are kept as ``Opaque("gemini", part)``.
* **Finish reasons** (``_FINISH``): ``STOP`` → ``stop``, or ``tool_calls`` when any function call was
  returned (Gemini has no tool reason); ``MAX_TOKENS`` → ``length``; the safety family →
  ``content_filter``; everything else, unknown values and a missing reason → ``stop``
  (wire-formats.md §0.1: never crash on a new enum value).
* **Usage**: prompt = ``promptTokenCount`` (includes cached) + ``toolUsePromptTokenCount``; completion =
  ``candidatesTokenCount + thoughtsTokenCount``; reasoning = ``thoughtsTokenCount``; cached =
  ``cachedContentTokenCount``.
* **Prompt blocked** (no candidates, ``promptFeedback.blockReason``) → ``ContentFiltered`` (a 400, like
  Azure OpenAI's prompt filter): the request itself was refused, so nothing is retried. No candidates
  and no block reason → ``UpstreamProtocolError``. A 200 body holding an ``error`` object raises it.
* ``id`` = ``responseId`` (a random ``gemini-…`` id when absent); ``created`` = Vertex ``createTime`` as
  epoch seconds, else 0 (Gemini AI Studio sends no timestamp; the caller stamps it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from unigate.dialects.base import DialectOptions
from unigate.dialects.gemini_errors import error_from_object
from unigate.errors import ContentFiltered, UpstreamProtocolError
from unigate.ir import ChatResponse, FinishReason, Message, Opaque, Part, Reasoning, Text, ToolCall, Usage

DIALECT_NAME = "gemini"

_FILTERED = (
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "LANGUAGE",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
    "MODEL_ARMOR",
)
_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **{reason: "content_filter" for reason in _FILTERED},
}


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A ``functionCall`` part before its id is assigned (``id`` is Gemini's own, if any)."""

    name: str
    arguments: str
    id: str | None


Item = Reasoning | Text | FunctionCall | Opaque


def load_object(data: bytes | str, what: str) -> dict[str, Any]:
    """Parse one JSON object; a 200 answer holding ``{"error": …}`` raises the classified error."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError(f"Gemini sent a {what} that is not valid JSON") from None
    if not isinstance(obj, dict):
        raise UpstreamProtocolError(f"Gemini sent a {what} that is not a JSON object")
    error = obj.get("error")
    if isinstance(error, dict):
        raise error_from_object(error)
    return obj


def first_candidate(obj: dict[str, Any]) -> dict[str, Any] | None:
    """Candidate 0 (the only one requested), or None; a blocked prompt raises ``ContentFiltered``."""
    candidates = obj.get("candidates")
    if isinstance(candidates, list):
        for candidate in candidates:
            if isinstance(candidate, dict) and candidate.get("index", 0) == 0:
                return candidate
    feedback = obj.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if reason:
        detail = feedback.get("blockReasonMessage") if isinstance(feedback, dict) else None
        raise ContentFiltered(
            f"Gemini blocked the prompt ({reason})" + (f": {detail}" if detail else ""),
            upstream_status=200,
            code="content_filter",
        )
    return None


def read_parts(candidate: dict[str, Any]) -> list[Item]:
    """The IR items of one candidate's ``content.parts``, in order."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return []
    out: list[Item] = []
    for part in parts:
        if not isinstance(part, dict):
            raise UpstreamProtocolError("Gemini sent a content part that is not an object")
        _read_part(part, out)
    return out


def _read_part(part: dict[str, Any], out: list[Item]) -> None:
    signature = part.get("thoughtSignature")
    signature = signature if isinstance(signature, str) and signature else None
    text = part.get("text")
    if part.get("thought") is True:
        if text or signature:
            out.append(Reasoning(text if isinstance(text, str) else "", signature))
        return
    if signature is not None:
        out.append(Reasoning("", signature))
    if "text" in part:
        if isinstance(text, str) and text:
            out.append(Text(text))
    elif "functionCall" in part:
        call = part["functionCall"]
        name = call.get("name") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(name, str) or not name:
            raise UpstreamProtocolError("Gemini sent a functionCall without a name")
        args = call.get("args")
        args = args if isinstance(args, dict) else {}
        own_id = call.get("id")
        own_id = own_id if isinstance(own_id, str) and own_id else None
        out.append(FunctionCall(name, orjson.dumps(args).decode(), own_id))
    else:
        data = {k: v for k, v in part.items() if k != "thoughtSignature"}
        if data:
            out.append(Opaque(DIALECT_NAME, data))


def call_id(call: FunctionCall, response_id: str | None, index: int) -> str:
    if call.id is not None:
        return call.id
    if response_id:
        return f"call_{response_id}_{index}"
    return f"call_{index}_{call.name}"


def finish_reason(raw: object, saw_tool_call: bool) -> FinishReason:
    reason = _FINISH.get(raw, "stop") if isinstance(raw, str) else "stop"
    if reason == "stop" and saw_tool_call:
        return "tool_calls"
    return reason


def usage(meta: object) -> Usage | None:
    if not isinstance(meta, dict):
        return None

    def count(key: str) -> int:
        value = meta.get(key)
        return value if isinstance(value, int) else 0

    thoughts = count("thoughtsTokenCount")
    return Usage(
        prompt_tokens=count("promptTokenCount") + count("toolUsePromptTokenCount"),
        completion_tokens=count("candidatesTokenCount") + thoughts,
        cached_tokens=count("cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def response_id(obj: dict[str, Any]) -> str | None:
    value = obj.get("responseId")
    return value if isinstance(value, str) and value else None


def new_id() -> str:
    return f"gemini-{uuid.uuid4().hex}"


def _created(obj: dict[str, Any]) -> int:
    value = obj.get("createTime")
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return 0
    return 0


def decode_response(body: bytes, options: DialectOptions) -> ChatResponse:
    """A complete ``generateContent`` answer → ``ChatResponse`` (candidate 0 only)."""
    obj = load_object(body, "response")
    candidate = first_candidate(obj)
    if candidate is None:
        raise UpstreamProtocolError("Gemini answered without candidates")
    rid = response_id(obj)
    parts: list[Part] = []
    calls = 0
    for item in read_parts(candidate):
        if isinstance(item, FunctionCall):
            parts.append(ToolCall(call_id(item, rid, calls), item.name, item.arguments))
            calls += 1
        else:
            parts.append(item)
    return ChatResponse(
        id=rid or new_id(),
        model=options.client_model,
        created=_created(obj),
        message=Message("assistant", tuple(parts)),
        finish_reason=finish_reason(candidate.get("finishReason"), calls > 0),
        usage=usage(obj.get("usageMetadata")),
    )
