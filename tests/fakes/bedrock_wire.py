"""Pure builders of Bedrock Runtime wire payloads for the fake (wire-formats.md §6), and its request checks.

Owns: Converse answers (``converse_json``) and ConverseStream events (``converse_events``), Claude's
InvokeModel stream as ``chunk`` frames (``invoke_frames``: each Anthropic stream event base64-encoded
in ``{"bytes", "p"}``, ``message_stop`` with ``amazon-bedrock-invocationMetrics``), Bedrock's error
answers (``x-amzn-ErrorType`` + ``{"message"}``), and the body checks: Converse bodies are validated
against botocore's own ``ConverseRequest`` shape (unknown keys, types, required members), plus the
ranges Bedrock enforces that the validator does not (temperature, topP). No I/O.

Token counts are word counts, like the other fakes.
"""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from tests.fakes.anthropic_wire import Answer as ClaudeAnswer
from tests.fakes.anthropic_wire import stream_events as claude_stream_events
from tests.fakes.bedrock_eventstream import event_frame, exception_frame
from tests.fakes.openai_wire import count_words, dumps, split_arguments, split_text

JsonObj = dict[str, Any]
BEDROCK_VERSION = "bedrock-2023-05-31"
ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"

STATUS_OF: Mapping[str, int] = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "IncompleteSignatureException": 403,
    "MissingAuthenticationTokenException": 403,
    "ResourceNotFoundException": 404,
    "UnknownOperationException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}
DEFAULT_MESSAGES: Mapping[str, str] = {
    "ValidationException": "Malformed input request, please reformat your input and try again.",
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
    "UnrecognizedClientException": "The security token included in the request is invalid.",
    "InvalidSignatureException": (
        "The request signature we calculated does not match the signature you provided. Check your AWS "
        "Secret Access Key and signing method. Consult the service documentation for details."
    ),
    "ResourceNotFoundException": "The provided model identifier is invalid.",
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "InternalServerException": "The server encountered an internal error while processing the request.",
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
    "ModelStreamErrorException": "The model stream encountered an error.",
}


def exception_for_status(status: int) -> str:
    for name, code in STATUS_OF.items():
        if code == status:
            return name
    return "InternalServerException" if status >= 500 else "ValidationException"


def error_answer(exception: str, message: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)`` of a Bedrock error answer (rest-json: the name in a header)."""
    text = message if message is not None else DEFAULT_MESSAGES.get(exception, exception)
    headers = {"x-amzn-ErrorType": exception + ERROR_TYPE_SUFFIX}
    return STATUS_OF.get(exception, 400), headers, dumps({"message": text})


def padding(n: int) -> str:
    """The ``p`` field Bedrock adds to stream payloads (length varies; content is noise)."""
    return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123"[: 1 + (n * 7) % 40]


def new_tool_use_id() -> str:
    return "tooluse_" + uuid.uuid4().hex[:22]


# ---- Claude through InvokeModel ---------------------------------------------------------------------


def invoke_frames(events: Sequence[tuple[str, JsonObj]], answer: ClaudeAnswer | None = None) -> list[bytes]:
    """Anthropic stream events as ``chunk`` frames; ``message_stop`` gains the invocation metrics."""
    frames = []
    for i, (name, obj) in enumerate(events):
        if name == "message_stop" and answer is not None:
            obj = obj | {
                "amazon-bedrock-invocationMetrics": {
                    "inputTokenCount": answer.input_tokens,
                    "outputTokenCount": answer.output_tokens,
                    "invocationLatency": 512,
                    "firstByteLatency": 230,
                }
            }
        payload = {"bytes": base64.b64encode(dumps(obj)).decode(), "p": padding(i)}
        frames.append(event_frame("chunk", dumps(payload)))
    return frames


def claude_frames(answer: ClaudeAnswer) -> list[bytes]:
    return invoke_frames(claude_stream_events(answer), answer)


def check_claude_body(body: Any) -> str | None:
    """Bedrock's ``ValidationException`` message for an InvokeModel Claude body, else None
    (the Messages checks themselves are the Anthropic fake's; these are the Bedrock-specific ones)."""
    if not isinstance(body, dict):
        return "Malformed input request: body must be a JSON object"
    if body.get("anthropic_version") != BEDROCK_VERSION:
        return f"Malformed input request: #/anthropic_version: expected {BEDROCK_VERSION}"
    for key in ("model", "stream", "metadata", "service_tier"):
        if key in body:
            return f"Malformed input request: #: extraneous key [{key}] is not permitted, please reformat your input"
    return None


# ---- Converse -----------------------------------------------------------------------------------------


@cache
def _converse_shape() -> Any:
    from botocore.loaders import Loader
    from botocore.model import ServiceModel

    model = ServiceModel(Loader().load_service_model("bedrock-runtime", "service-2"))
    return model.operation_model("Converse").input_shape


def check_converse_body(body: Any, model: str) -> str | None:
    """The ``ValidationException`` message for a Converse body, else None."""
    from botocore.validate import ParamValidator

    if not isinstance(body, dict):
        return "Malformed input request: body must be a JSON object"
    if "modelId" in body:
        return "Unknown parameter in input: modelId (it belongs in the URL)"
    report = ParamValidator().validate({**body, "modelId": model}, _converse_shape())
    if report.has_errors():
        return report.generate_report()
    inference = body.get("inferenceConfig") or {}
    if not 0 <= inference.get("temperature", 0) <= 1:
        return "The value at inferenceConfig.temperature must be less than or equal to 1."
    if not body.get("messages"):
        return "A conversation must start with a user message."
    roles = [m.get("role") for m in body["messages"]]
    if roles[0] != "user" or any(a == b for a, b in itertools.pairwise(roles)):
        return "A conversation must alternate between user and assistant roles."
    for message in body["messages"]:
        for block in message.get("content") or ():
            if block.get("text") == "":
                return "The text field in the ContentBlock object is blank."
    return None


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class ConverseAnswer:
    """One assistant message; blocks render reasoning, text, then tool uses."""

    text: str = ""
    tool_uses: tuple[ToolUse, ...] = ()
    reasoning: tuple[str, str] | None = None
    stop_reason: str = "end_turn"
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0
    extra_blocks: tuple[JsonObj, ...] = field(default=())

    @property
    def has_text_block(self) -> bool:
        return bool(self.text) or (self.reasoning is None and not self.tool_uses)


def usage_json(answer: ConverseAnswer) -> JsonObj:
    total = answer.input_tokens + answer.cache_read + answer.cache_write + answer.output_tokens
    return {
        "inputTokens": answer.input_tokens,
        "outputTokens": answer.output_tokens,
        "totalTokens": total,
        "cacheReadInputTokens": answer.cache_read,
        "cacheWriteInputTokens": answer.cache_write,
    }


def converse_json(answer: ConverseAnswer) -> JsonObj:
    content: list[JsonObj] = []
    if answer.reasoning is not None:
        text, signature = answer.reasoning
        content.append({"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}})
    if answer.has_text_block:
        content.append({"text": answer.text})
    content.extend(answer.extra_blocks)
    for use in answer.tool_uses:
        content.append({"toolUse": {"toolUseId": use.id, "name": use.name, "input": dict(use.input)}})
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": answer.stop_reason,
        "usage": usage_json(answer),
        "metrics": {"latencyMs": 412},
    }


ConverseEvent = tuple[str, JsonObj]


def converse_events(answer: ConverseAnswer) -> list[ConverseEvent]:
    """ConverseStream's events: text and reasoning blocks start with a delta (no contentBlockStart);
    tool input arrives as string fragments; ``metadata`` (usage) comes after ``messageStop``."""
    events: list[ConverseEvent] = [("messageStart", {"role": "assistant"})]
    index = 0
    if answer.reasoning is not None:
        text, signature = answer.reasoning
        for piece in split_text(text):
            events.append(_delta(index, {"reasoningContent": {"text": piece}}))
        events.append(_delta(index, {"reasoningContent": {"signature": signature}}))
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    if answer.has_text_block:
        for piece in split_text(answer.text) or [""]:
            events.append(_delta(index, {"text": piece}))
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    for use in answer.tool_uses:
        start = {"toolUse": {"toolUseId": use.id, "name": use.name}}
        events.append(("contentBlockStart", {"contentBlockIndex": index, "start": start}))
        for fragment in split_arguments(json.dumps(dict(use.input)), 3):
            events.append(_delta(index, {"toolUse": {"input": fragment}}))
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    events.append(("messageStop", {"stopReason": answer.stop_reason}))
    events.append(("metadata", {"usage": usage_json(answer), "metrics": {"latencyMs": 412}}))
    return events


def _delta(index: int, delta: JsonObj) -> ConverseEvent:
    return "contentBlockDelta", {"contentBlockIndex": index, "delta": delta}


def converse_frames(events: Sequence[ConverseEvent]) -> list[bytes]:
    return [event_frame(name, dumps(obj | {"p": padding(i)})) for i, (name, obj) in enumerate(events)]


def filler_converse(chunks: int) -> ConverseAnswer:
    """A text answer with exactly ``chunks`` text deltas (``part0 part1 …``)."""
    text = "".join(f"part{i} " for i in range(max(chunks, 1)))
    return ConverseAnswer(text=text, output_tokens=count_words(text))


def partial_converse(chunks: int) -> list[bytes]:
    """``messageStart`` and ``chunks`` text deltas (none if 0), as frames."""
    if chunks <= 0:
        return []
    return converse_frames(converse_events(filler_converse(chunks))[: 1 + chunks])


def stream_exception(exception: str, message: str) -> bytes:
    """An in-stream exception frame; the type is the lower-camel member name (``throttlingException``)."""
    return exception_frame(exception[:1].lower() + exception[1:], dumps({"message": message}))


def block_text(blocks: Any) -> str:
    texts: list[str] = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolResult"), dict):
            texts.append(block_text(block["toolResult"].get("content")))
    return " ".join(t for t in texts if t)


def converse_input_tokens(body: Mapping[str, Any]) -> int:
    total = count_words(block_text(body.get("system")))
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            total += count_words(block_text(message.get("content")))
    return total


def last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            texts = [b["text"] for b in message.get("content") or () if isinstance(b, dict) and "text" in b]
            if texts:
                return " ".join(texts)
    return ""


def forced_tool(body: Mapping[str, Any]) -> str | None:
    """The tool a ``toolChoice`` of ``any`` (the first tool) or ``tool`` forces, else None."""
    config = body.get("toolConfig")
    if not isinstance(config, dict):
        return None
    tools = [t["toolSpec"]["name"] for t in config.get("tools") or () if isinstance(t, dict) and "toolSpec" in t]
    choice = config.get("toolChoice") or {}
    if "any" in choice and tools:
        return str(tools[0])
    if "tool" in choice:
        return str(choice["tool"].get("name"))
    return None
