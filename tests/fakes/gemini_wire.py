"""Pure builders of Gemini ``generateContent`` wire payloads (wire-formats.md §3, and the Vertex
variant of §4) for the fake Gemini and Vertex upstreams.

Owns the exact JSON shapes: a ``GenerateContentResponse`` (candidates, ``content.parts`` with
``text`` / ``thought: true`` / ``functionCall`` / ``thoughtSignature``, ``finishReason``,
``usageMetadata``, ``modelVersion``, ``responseId``; on Vertex also ``createTime`` and
``usageMetadata.trafficType``), the chunk sequence of a stream, blocked-prompt responses,
Google RPC error bodies, the models list, and request checks. No I/O.

Token counts are word counts: prompt = words of ``systemInstruction`` and every text part;
candidates = words of answer text plus, per call, 1 + words of its args JSON; thoughts = words of
the thought summary.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.openai_wire import count_words, dumps, split_text

JsonObj = dict[str, Any]


def new_response_id() -> str:
    return uuid.uuid4().hex[:22]


def sse(obj: Any) -> bytes:
    """One unnamed SSE event, framed as Gemini frames them (``\\r\\n\\r\\n`` after the data line)."""
    return b"data: " + dumps(obj) + b"\r\n\r\n"


def get(obj: Mapping[str, Any], camel: str) -> Any:
    """A request field by its camelCase or snake_case name (the API accepts both)."""
    if camel in obj:
        return obj[camel]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
    return obj.get(snake)


# ---- reading requests ---------------------------------------------------------------------------


def parts_text(content: Any) -> str:
    if not isinstance(content, dict):
        return ""
    texts = [str(p["text"]) for p in content.get("parts") or () if isinstance(p, dict) and "text" in p]
    return " ".join(t for t in texts if t)


def last_user_text(contents: Sequence[Any]) -> str:
    """Text of the last ``user`` (or role-less) turn that has text parts."""
    for content in reversed(contents):
        if isinstance(content, dict) and content.get("role", "user") == "user" and parts_text(content):
            return parts_text(content)
    return ""


def prompt_tokens(body: Mapping[str, Any]) -> int:
    total = count_words(parts_text(get(body, "systemInstruction")))
    return total + sum(count_words(parts_text(c)) for c in body.get("contents") or ())


def function_names(body: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for tool in body.get("tools") or ():
        if isinstance(tool, dict):
            names += [str(d["name"]) for d in get(tool, "functionDeclarations") or () if isinstance(d, dict)]
    return names


def calling_config(body: Mapping[str, Any]) -> Mapping[str, Any]:
    config = get(body, "toolConfig")
    inner = get(config, "functionCallingConfig") if isinstance(config, dict) else None
    return inner if isinstance(inner, dict) else {}


REQUEST_FIELDS = frozenset(
    {
        "model",
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "safetySettings",
        "generationConfig",
        "cachedContent",
        "labels",
        "serviceTier",
        "store",
        "continuationToken",
    }
)
"""Top-level request fields (what google-genai 3.6 can send); any other is a 400, as on the API."""
VERTEX_REQUEST_FIELDS = (REQUEST_FIELDS - {"store"}) | {"modelArmorConfig", "outputConfig"}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def check_body(body: Any, vertex: bool = False) -> str | None:
    """The ``INVALID_ARGUMENT`` message for a malformed request body, else None."""
    if not isinstance(body, dict):
        return "Invalid JSON payload received. Expected an object."
    allowed = VERTEX_REQUEST_FIELDS if vertex else REQUEST_FIELDS
    for key in body:
        if _camel(key) not in allowed:
            return f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified\n"
    for i, content in enumerate(contents):
        if not isinstance(content, dict) or not content.get("parts"):
            return f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
        role = content.get("role")
        if (vertex and role is None) or role not in (None, "user", "model", "function"):
            return "Please use a valid role: user, model."
    return None


# ---- answers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    name: str
    args: Mapping[str, Any]


@dataclass(frozen=True)
class Answer:
    """Everything needed to render one response, stream or not. ``thoughts`` is
    ``(summary_text, signature)``: the summary becomes ``thought: true`` parts and the signature
    rides on the first non-thought part (the first ``functionCall`` if any, else the first
    text part). Parts are ordered thought, text, calls."""

    model: str
    text: str = ""
    calls: tuple[Call, ...] = ()
    thoughts: tuple[str, str] | None = None
    finish_reason: str = "STOP"
    prompt_tokens: int = 0
    candidates_tokens: int = 0
    thoughts_tokens: int = 0
    cached_tokens: int = 0
    vertex: bool = False
    response_id: str = field(default_factory=new_response_id)


SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
]


def usage_json(answer: Answer, final: bool = True, thoughts_seen: bool = True) -> JsonObj:
    """Final usage, or the running usage of a non-final stream chunk (prompt, and the thoughts
    once thought parts were sent)."""
    p, c, t = answer.prompt_tokens, answer.candidates_tokens, answer.thoughts_tokens
    usage: JsonObj = {"promptTokenCount": p}
    if final and c:
        usage["candidatesTokenCount"] = c
    thoughts = t if (final or thoughts_seen) else 0
    usage["totalTokenCount"] = p + (c if final else 0) + thoughts
    if answer.cached_tokens:
        usage["cachedContentTokenCount"] = answer.cached_tokens
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": p}]
    if answer.cached_tokens:
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": answer.cached_tokens}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if answer.vertex:
        if final and c:
            usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": c}]
        usage["trafficType"] = "ON_DEMAND"
    return usage


def create_time() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def _envelope(answer: Answer, body: JsonObj) -> JsonObj:
    body["modelVersion"] = answer.model
    if answer.vertex:
        body["createTime"] = create_time()
    body["responseId"] = answer.response_id
    return body


def _candidate(answer: Answer, parts: list[JsonObj], finish: bool) -> JsonObj:
    candidate: JsonObj = {}
    if parts:
        candidate["content"] = {"parts": parts, "role": "model"}
    if finish:
        candidate["finishReason"] = answer.finish_reason
        if answer.finish_reason == "SAFETY":
            candidate["safetyRatings"] = SAFETY_RATINGS
    candidate["index"] = 0
    return candidate


def part_groups(answer: Answer) -> list[list[JsonObj]]:
    """The parts of a streamed answer, grouped per chunk: one word of thought summary or text per
    chunk, then all calls in one chunk; the signature on the first non-thought part."""
    groups: list[list[JsonObj]] = []
    if answer.thoughts is not None:
        groups += [[{"text": piece, "thought": True}] for piece in split_text(answer.thoughts[0])]
    groups += [[{"text": piece}] for piece in split_text(answer.text)]
    if answer.calls:
        groups.append([{"functionCall": {"name": c.name, "args": dict(c.args)}} for c in answer.calls])
    if answer.thoughts is not None and answer.thoughts[1]:
        calls = [p for p in groups[-1] if "functionCall" in p] if groups else []
        target = calls[0] if calls else next((g[0] for g in groups if "thought" not in g[0]), None)
        if target is None and groups:
            target = groups[-1][0]
        if target is not None:
            target["thoughtSignature"] = answer.thoughts[1]
    return groups


def response_json(answer: Answer) -> JsonObj:
    """A non-streaming ``GenerateContentResponse`` (adjacent text pieces merged into one part)."""
    parts: list[JsonObj] = []
    for group in part_groups(answer):
        for part in group:
            last = parts[-1] if parts else None
            mergeable = last is not None and "text" in part and "text" in last and "thoughtSignature" not in part
            if mergeable and last is not None and last.get("thought") == part.get("thought"):
                last["text"] += part["text"]
            else:
                parts.append(dict(part))
    body = {"candidates": [_candidate(answer, parts, True)], "usageMetadata": usage_json(answer)}
    return _envelope(answer, body)


def stream_chunks(answer: Answer) -> list[JsonObj]:
    """The full chunk sequence of a streamed answer (no sentinel: the body just ends). Every chunk
    has ``usageMetadata``; the last one carries ``finishReason`` and the final usage."""
    groups = part_groups(answer) or [[]]
    chunks: list[JsonObj] = []
    thoughts_seen = False
    for i, parts in enumerate(groups):
        final = i == len(groups) - 1
        thoughts_seen = thoughts_seen or any(p.get("thought") for p in parts)
        body = {
            "candidates": [_candidate(answer, parts, final)],
            "usageMetadata": usage_json(answer, final, thoughts_seen),
        }
        chunks.append(_envelope(answer, body))
    return chunks


def blocked_json(answer: Answer, reason: str) -> JsonObj:
    """A blocked prompt: HTTP 200, no ``candidates``, ``promptFeedback.blockReason``."""
    feedback: JsonObj = {"blockReason": reason}
    if reason == "SAFETY":
        feedback["safetyRatings"] = SAFETY_RATINGS
    p = answer.prompt_tokens
    usage: JsonObj = {
        "promptTokenCount": p,
        "totalTokenCount": p,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": p}],
    }
    if answer.vertex:
        usage["trafficType"] = "ON_DEMAND"
    return _envelope(answer, {"promptFeedback": feedback, "usageMetadata": usage})


def filler_answer(model: str, chunks: int, vertex: bool = False) -> Answer:
    """A text answer with exactly ``chunks`` stream chunks, for the partial-stream behaviours."""
    text = "".join(f"part{i} " for i in range(max(chunks, 1)))
    return Answer(model, text, candidates_tokens=count_words(text), vertex=vertex)


# ---- errors and models ----------------------------------------------------------------------------

GOOGLE_STATUS: Mapping[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    409: ("ABORTED", "The operation was aborted."),
    429: ("RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details."),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}


def retry_delay_text(delay: float | str) -> str:
    """A ``google.protobuf.Duration`` in JSON: ``"37s"``, ``"0.5s"``."""
    return delay if isinstance(delay, str) else f"{delay:g}s"


def error_json(
    code: int,
    status: str | None = None,
    message: str | None = None,
    details: Sequence[Mapping[str, Any]] | None = None,
) -> JsonObj:
    default_status, default_message = GOOGLE_STATUS.get(
        code, ("INTERNAL" if code >= 500 else "UNKNOWN", f"HTTP {code}")
    )
    error: JsonObj = {"code": code, "message": message or default_message, "status": status or default_status}
    if details:
        error["details"] = [dict(d) for d in details]
    return {"error": error}


def quota_details(model: str, retry_delay: float | str | None) -> list[JsonObj]:
    details: list[JsonObj] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": "10",
                }
            ],
        }
    ]
    if retry_delay is not None:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay_text(retry_delay)}
        )
    return details


def api_key_invalid_json() -> JsonObj:
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
    return error_json(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [info])


def model_json(model: str) -> JsonObj:
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model.replace("-", " ").title(),
        "description": f"Fake {model}",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": True,
    }


def models_json(models: Sequence[str]) -> JsonObj:
    return {"models": [model_json(m) for m in models]}


def args_words(args: Mapping[str, Any]) -> int:
    return count_words(json.dumps(dict(args)))
