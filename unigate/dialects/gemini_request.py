"""IR ``ChatRequest`` → Gemini ``generateContent`` body (AI Studio and Vertex share it).

Docs: https://ai.google.dev/api/generate-content , https://ai.google.dev/gemini-api/docs/function-calling ,
https://ai.google.dev/gemini-api/docs/thought-signatures (wire-formats.md §3, §4).

Decisions (each is a refusal, a mapping or a documented drop; nothing that changes the output is
dropped silently):

* **Messages.** ``system``/``developer`` texts, in order, become ``systemInstruction.parts`` (Gemini has
  one system slot; a mid-conversation system message moves there too). ``user`` → ``user``,
  ``assistant`` → ``model``; consecutive same-role contents are merged (older models reject
  non-alternating turns). Empty texts are skipped (Gemini rejects empty ``text``), and so is a content
  left with no parts. ``Message.name`` is dropped: Gemini has no participant names.
* **Tool calls and results.** An assistant ``ToolCall`` becomes ``functionCall {name, args}``; ``args``
  is the parsed ``arguments`` and must be a JSON object (``""`` counts as ``{}``), else ``BadRequest``.
  ``functionResponse`` needs the function *name* while OpenAI ``tool`` messages carry only the call id,
  so an id → name table is built while encoding; a result for an unknown id is a ``BadRequest``. A run
  of consecutive tool results goes in ONE ``user`` content, sorted into call order. The response is
  ``{"result": <the text parsed as JSON, or the text>}`` (``{"error": …}`` when ``is_error``); Gemini
  treats a response without ``output``/``error`` keys as the whole output. Non-text tool-result parts
  are refused. Call ids are not sent (``functionCall.id`` is not accepted everywhere); Gemini pairs
  calls and responses by order and name.
* **Thought signatures.** ``decode`` turns a signature on a non-thought part into an empty
  ``Reasoning("", signature)`` right before that part; here such a signature is attached to the next
  text/functionCall part of the same assistant message, which is where Gemini issued it (Gemini 3
  rejects a replayed step whose first ``functionCall`` lacks it). A signature with no following part
  is dropped (Gemini requires signatures only on function calls). A signed ``Reasoning`` with text is
  replayed as a ``thought: true`` part with its signature; unsigned reasoning text and Anthropic
  ``redacted`` reasoning are dropped (Gemini reads nothing from unsigned thought summaries). The
  setting ``gemini_thought_signature_fallback`` (a string, e.g. Google's documented
  ``skip_thought_signature_validator``) is put on the first ``functionCall`` of an assistant message
  that has no signature, for histories written by clients that do not keep reasoning; off by default.
  A signature in Google's OpenAI-compatible form (``tool_calls[].extra_content.google.thought_signature``,
  kept by the OpenAI dialect as an ``Opaque("openai")`` tool-call part) is put on its call too.
* **Media.** ``data:`` URIs → ``inlineData``; ``gs://`` and Gemini Files API URLs → ``fileData``
  (``mimeType`` guessed from the extension when known); any other URL → ``UnsupportedFeature`` (the
  relay may fetch and inline it first; not a dialect's job). ``Image.detail`` is dropped. Audio →
  ``inlineData`` with the audio MIME type of its format.
* **Generation config.** See ``_GENERATION`` and ``_EXTRA``: renames, plus ``stop`` → ``stopSequences``
  (more than 5 refused, never truncated), ``n > 1`` refused (the gateway answers with one choice),
  ``response_format`` → ``responseMimeType`` (+ ``responseJsonSchema``: the client's JSON Schema as is,
  only a top-level ``$schema`` removed), ``reasoning_effort`` → ``thinkingConfig`` (``_THINKING``),
  ``parallel_tool_calls: false`` with tools refused (Gemini has no switch; without tools it is a
  no-op). Tools use ``parametersJsonSchema`` (plain JSON Schema) rather than the OpenAPI-subset
  ``parameters``, so ``additionalProperties``, ``$ref``, ``anyOf`` survive instead of being stripped;
  ``strict`` has no Gemini counterpart and is ignored (documented drop, so strict-by-default SDKs work).
* **Unknown ``extra`` fields** are refused with ``UnsupportedFeature`` naming the field, unless their
  value is ``null`` or they are listed in ``_EXTRA`` (mapped, ignored because they do not change the
  output, or accepted only at their no-op value). ``user`` is dropped (no Gemini field; no effect).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from unigate.dialects.base import DialectOptions
from unigate.errors import BadRequest, UnsupportedFeature
from unigate.ir import (
    Audio,
    ChatRequest,
    Image,
    Message,
    NamedToolChoice,
    Opaque,
    Part,
    Reasoning,
    Text,
    ToolCall,
    ToolResult,
)

DIALECT_NAME = "gemini"
MAX_STOP_SEQUENCES = 5
SIGNATURE_FALLBACK_SETTING = "gemini_thought_signature_fallback"

# Typed IR fields copied into generationConfig under a new name (None = not sent).
_GENERATION: tuple[tuple[str, str], ...] = (
    ("max_tokens", "maxOutputTokens"),
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("top_k", "topK"),
    ("seed", "seed"),
)

# reasoning_effort → thinkingConfig. Budgets follow Google's own OpenAI-compatibility mapping
# (low 1K, medium 8K, high 24K, none 0); "minimal" sits below "low". thinkingBudget is accepted by
# 2.5 and 3.x models. Thought summaries are requested whenever thinking is on.
_THINKING: dict[str, dict[str, Any]] = {
    "none": {"thinkingBudget": 0, "includeThoughts": False},
    "minimal": {"thinkingBudget": 512, "includeThoughts": True},
    "low": {"thinkingBudget": 1024, "includeThoughts": True},
    "medium": {"thinkingBudget": 8192, "includeThoughts": True},
    "high": {"thinkingBudget": 24576, "includeThoughts": True},
}

_TOOL_MODES: dict[str, str] = {"auto": "AUTO", "none": "NONE", "required": "ANY"}

_AUDIO_MIME: dict[str, str] = {
    "wav": "audio/wav",
    "mp3": "audio/mp3",
    "aiff": "audio/aiff",
    "aac": "audio/aac",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
}

_FILE_MIME: dict[str, str] = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
}

# The OpenAI dialect's name, for the one Opaque form read here (see _compat_signatures); a literal
# so this module does not import another dialect.
_OPENAI_DIALECT = "openai"

_FILE_URI_PREFIXES = ("gs://", "https://generativelanguage.googleapis.com/")


def _no_op(*allowed: object) -> Callable[[str, Any, dict[str, Any]], None]:
    """An extra field accepted only at a value that leaves the output unchanged."""

    def check(key: str, value: Any, gen: dict[str, Any]) -> None:
        if value not in allowed and not (isinstance(value, list | dict) and not value):
            raise UnsupportedFeature(f"'{key}' is not supported by Gemini models", param=key)

    return check


def _rename(target: str) -> Callable[[str, Any, dict[str, Any]], None]:
    def put(key: str, value: Any, gen: dict[str, Any]) -> None:
        gen[target] = value

    return put


def _ignore(key: str, value: Any, gen: dict[str, Any]) -> None:
    """Fields with no effect on the answer (bookkeeping, latency hints)."""


def _max_completion_tokens(key: str, value: Any, gen: dict[str, Any]) -> None:
    gen.setdefault("maxOutputTokens", value)


def _modalities(key: str, value: Any, gen: dict[str, Any]) -> None:
    if value != ["text"]:
        raise UnsupportedFeature("only text output is supported for Gemini models", param=key)


# OpenAI request fields that ride in ChatRequest.extra: key → handler(key, value, generationConfig).
_EXTRA: dict[str, Callable[[str, Any, dict[str, Any]], None]] = {
    "presence_penalty": _rename("presencePenalty"),
    "frequency_penalty": _rename("frequencyPenalty"),
    "max_completion_tokens": _max_completion_tokens,
    "stream_options": _ignore,
    "metadata": _ignore,
    "store": _ignore,
    "service_tier": _ignore,
    "prompt_cache_key": _ignore,
    "safety_identifier": _ignore,
    "prediction": _ignore,
    "modalities": _modalities,
    "logprobs": _no_op(False),
    "top_logprobs": _no_op(0),
    "logit_bias": _no_op(),
}


def encode_request(request: ChatRequest, options: DialectOptions) -> dict[str, Any]:
    """The ``generateContent`` / ``streamGenerateContent`` body for ``request``."""
    fallback = options.settings.get(SIGNATURE_FALLBACK_SETTING)
    encoder = _Contents(fallback if isinstance(fallback, str) and fallback else None)
    for message in request.messages:
        encoder.add(message)
    body: dict[str, Any] = {"contents": encoder.finish()}
    if encoder.system:
        body["systemInstruction"] = {"parts": encoder.system}
    if request.tools:
        body["tools"] = [
            {"functionDeclarations": [_declaration(t.name, t.description, t.parameters) for t in request.tools]}
        ]
    tool_config = _tool_config(request)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    if request.parallel_tool_calls is False and request.tools:
        raise UnsupportedFeature(
            "parallel_tool_calls=false cannot be expressed for Gemini models", param="parallel_tool_calls"
        )
    generation = _generation_config(request, options)
    if generation:
        body["generationConfig"] = generation
    return body


def _generation_config(request: ChatRequest, options: DialectOptions) -> dict[str, Any]:
    gen: dict[str, Any] = {}
    for field, target in _GENERATION:
        value = getattr(request, field)
        if value is not None:
            gen[target] = value
    if "maxOutputTokens" not in gen and options.default_max_tokens is not None:
        gen["maxOutputTokens"] = options.default_max_tokens
    if request.stop:
        if len(request.stop) > MAX_STOP_SEQUENCES:
            raise UnsupportedFeature(f"Gemini accepts at most {MAX_STOP_SEQUENCES} stop sequences", param="stop")
        gen["stopSequences"] = list(request.stop)
    if request.n is not None and request.n != 1:
        if request.n < 1:
            raise BadRequest("n must be at least 1", param="n")
        raise UnsupportedFeature("n > 1 is not supported: one choice is returned", param="n")
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        gen["responseMimeType"] = "application/json"
        if fmt.type == "json_schema":
            if fmt.schema is None:
                raise BadRequest("response_format.json_schema.schema is required", param="response_format")
            gen["responseJsonSchema"] = _json_schema(fmt.schema)
    if request.reasoning_effort is not None:
        thinking = _THINKING.get(request.reasoning_effort)
        if thinking is None:
            raise UnsupportedFeature(
                f"reasoning_effort '{request.reasoning_effort}' is not supported for Gemini models "
                f"(use one of {', '.join(_THINKING)})",
                param="reasoning_effort",
            )
        gen["thinkingConfig"] = dict(thinking)
    for key, value in request.extra.items():
        if value is None:
            continue
        handler = _EXTRA.get(key)
        if handler is None:
            raise UnsupportedFeature(f"'{key}' is not supported by Gemini models", param=key)
        handler(key, value, gen)
    return gen


def _json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != "$schema"}


def _declaration(name: str, description: str | None, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    decl: dict[str, Any] = {"name": name}
    if description:
        decl["description"] = description
    if parameters:
        decl["parametersJsonSchema"] = _json_schema(parameters)
    return decl


def _tool_config(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if not request.tools:
        if choice in ("auto", "none"):
            return None
        raise BadRequest("tool_choice requires tools", param="tool_choice")
    if isinstance(choice, NamedToolChoice):
        if choice.name not in {t.name for t in request.tools}:
            raise BadRequest(f"tool_choice names an undeclared function '{choice.name}'", param="tool_choice")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice.name]}}
    return {"functionCallingConfig": {"mode": _TOOL_MODES[choice]}}


class _Contents:
    """Accumulates ``contents`` and ``systemInstruction`` while walking the messages once.

    ``calls`` maps every assistant tool-call id seen so far to (function name, call order);
    ``pending`` holds the current run of tool results until a non-tool message ends it.
    """

    def __init__(self, signature_fallback: str | None) -> None:
        self.system: list[dict[str, Any]] = []
        self.contents: list[dict[str, Any]] = []
        self.calls: dict[str, tuple[str, int]] = {}
        self.pending: list[tuple[int, dict[str, Any]]] = []
        self.fallback = signature_fallback

    def add(self, message: Message) -> None:
        if message.role == "tool":
            for part in message.parts:
                self.pending.append(self._tool_result(part))
            return
        self._flush()
        if message.role in ("system", "developer"):
            for part in message.parts:
                if not isinstance(part, Text):
                    raise UnsupportedFeature("Gemini system instructions hold text only", param="messages")
                if part.text:
                    self.system.append({"text": part.text})
        elif message.role == "user":
            for part in message.parts:
                if isinstance(part, ToolResult):  # Anthropic-style: results inside a user turn
                    self.pending.append(self._tool_result(part))
                elif not _empty(part):
                    self._flush()
                    self._append("user", [_media_or_text(part)])
            self._flush()
        else:
            self._append("model", self._assistant(message.parts))

    def finish(self) -> list[dict[str, Any]]:
        self._flush()
        return self.contents

    def _flush(self) -> None:
        if self.pending:
            self.pending.sort(key=lambda item: item[0])
            self._append("user", [part for _, part in self.pending])
            self.pending = []

    def _append(self, role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if self.contents and self.contents[-1]["role"] == role:
            self.contents[-1]["parts"].extend(parts)
        else:
            self.contents.append({"role": role, "parts": parts})

    def _assistant(self, parts: tuple[Part, ...]) -> list[dict[str, Any]]:
        compat = _compat_signatures(parts)
        out: list[dict[str, Any]] = []
        signature: str | None = None
        signed_call = False
        for part in parts:
            if isinstance(part, Reasoning):
                if part.redacted or not part.signature:
                    continue
                if part.text:
                    out.append({"text": part.text, "thought": True, "thoughtSignature": part.signature})
                else:
                    signature = part.signature
                continue
            if _empty(part) or (isinstance(part, Opaque) and _is_compat_call_fields(part)):
                continue
            if isinstance(part, ToolCall):
                encoded = self._call(part)
                if signature is None:
                    signature = compat.get(part.id)
                if signature is None and not signed_call and self.fallback is not None:
                    signature = self.fallback
                signed_call = True
            else:
                encoded = _media_or_text(part)
            if signature is not None:
                encoded["thoughtSignature"] = signature
                signature = None
            out.append(encoded)
        return out

    def _call(self, call: ToolCall) -> dict[str, Any]:
        try:
            args = orjson.loads(call.arguments) if call.arguments.strip() else {}
        except orjson.JSONDecodeError:
            raise BadRequest(f"tool call '{call.id}' has arguments that are not valid JSON", param="messages") from None
        if not isinstance(args, dict):
            raise BadRequest(f"tool call '{call.id}' arguments must be a JSON object", param="messages")
        self.calls[call.id] = (call.name, len(self.calls))
        return {"functionCall": {"name": call.name, "args": args}}

    def _tool_result(self, part: Part) -> tuple[int, dict[str, Any]]:
        if not isinstance(part, ToolResult):
            raise BadRequest("a tool message must hold a tool result", param="messages")
        known = self.calls.get(part.call_id)
        if known is None:
            raise BadRequest(
                f"tool result for unknown tool_call_id '{part.call_id}': no earlier assistant tool call has this id",
                param="messages",
            )
        texts = []
        for item in part.content:
            if not isinstance(item, Text):
                raise UnsupportedFeature("Gemini tool results hold text only", param="messages")
            texts.append(item.text)
        text = "".join(texts)
        value: Any
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = text
        name, order = known
        key = "error" if part.is_error else "result"
        return order, {"functionResponse": {"name": name, "response": {key: value}}}


def _is_compat_call_fields(part: Opaque) -> bool:
    return part.dialect == _OPENAI_DIALECT and "tool_call" in part.data


def _compat_signatures(parts: tuple[Part, ...]) -> dict[str, str]:
    """Thought signatures in Google's OpenAI-compatible form, by tool-call id.

    Gemini's own OpenAI-compatible endpoint returns them as
    ``tool_calls[].extra_content.google.thought_signature``; the OpenAI dialect keeps such untyped
    tool-call keys as ``Opaque("openai", {"tool_call": id, "fields": {...}})``. That container is
    the only untyped tool-call field accepted here; any other is refused.
    """
    found: dict[str, str] = {}
    for part in parts:
        if not isinstance(part, Opaque) or not _is_compat_call_fields(part):
            continue
        fields = part.data.get("fields")
        if not isinstance(fields, Mapping) or set(fields) != {"extra_content"}:
            names = ", ".join(sorted(fields)) if isinstance(fields, Mapping) else "?"
            raise UnsupportedFeature(f"tool call field(s) {names} cannot be sent to Gemini", param="messages")
        google = fields["extra_content"].get("google") if isinstance(fields["extra_content"], Mapping) else None
        signature = google.get("thought_signature") if isinstance(google, Mapping) else None
        if isinstance(signature, str) and signature:
            found[str(part.data["tool_call"])] = signature
    return found


def _empty(part: Part) -> bool:
    return isinstance(part, Text) and not part.text


def _media_or_text(part: Part) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"text": part.text}
    if isinstance(part, Image):
        return _image(part.url)
    if isinstance(part, Audio):
        mime = _AUDIO_MIME.get(part.format.lower())
        if mime is None:
            raise UnsupportedFeature(f"audio format '{part.format}' is not supported by Gemini", param="messages")
        return {"inlineData": {"mimeType": mime, "data": part.data}}
    if isinstance(part, Opaque) and part.dialect == DIALECT_NAME:
        return dict(part.data)
    raise UnsupportedFeature(f"{type(part).__name__} content cannot be sent here to Gemini", param="messages")


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        mime, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not mime or not data:
            raise BadRequest("image data URIs must look like data:<mime>;base64,<data>", param="messages")
        return {"inlineData": {"mimeType": mime, "data": data}}
    if url.startswith(_FILE_URI_PREFIXES):
        file_data = {"fileUri": url}
        ext = url.rsplit("/", 1)[-1].rpartition(".")[2].lower()
        guessed = _FILE_MIME.get(ext)
        if guessed is not None:
            file_data = {"mimeType": guessed, "fileUri": url}
        return {"fileData": file_data}
    raise UnsupportedFeature(
        "Gemini takes images inline (data: URI), from gs:// or from its Files API; fetch other URLs first",
        param="messages",
    )
