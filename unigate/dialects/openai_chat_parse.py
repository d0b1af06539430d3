"""OpenAI Chat Completions requests, inbound: validate and decode a client body into the IR
(wire-formats.md §1). The inverse, ``encode_request``, lives in ``openai_chat_request``.

``parse_request`` is the inbound gate of translated routes. Every field the IR types is
type-checked and a wrong one is a ``BadRequest`` whose ``param`` is the field's path
(``messages[2].content``, ``tools[0].function.name``); values the IR cannot hold are an
``UnsupportedFeature`` (also a 400). Nothing is clamped and nothing is dropped silently, except
the normalisations listed below, which leave the meaning unchanged.

Ranges (outside → 400, never clamped): ``temperature`` 0–2, ``top_p`` 0–1, ``top_k`` ≥ 0,
``n`` 1–``MAX_N`` (128), ``max_tokens`` 1–2³¹−1, ``seed`` a signed 64-bit integer; numbers must be
finite and booleans are not numbers. Integers must be JSON integers (``1e9`` is a float).

Decisions:

* Every top-level key that is not typed rides in ``ChatRequest.extra`` unchanged (``logprobs``,
  ``logit_bias``, penalties, ``metadata``, ``store``, ``modalities``, ``prediction``,
  ``service_tier``, unknown keys). Keys of ``stream_options`` other than ``include_usage`` ride in
  ``extra["stream_options"]``.
* Upstream overrides (``REFUSED_FIELDS``: ``api_base``, ``base_url``, ``api_key``, headers, …),
  which some gateways honoured, are refused with a 400 naming the field: never dropped quietly,
  never sent on (DESIGN.md, "Never trust the client with upstream details").
* Legacy function calling (``functions``, ``function_call``, the ``function`` role) is refused
  (``UnsupportedFeature``): the IR has no place for it and its replies could not be decoded.
* Tools, tool calls and ``tool_choice`` of a type other than ``function`` (``custom``,
  ``allowed_tools``, built-in tools) are refused: the IR cannot carry them and putting them in
  ``extra`` would hide them from every other dialect. Unknown keys inside a tool, a named
  ``tool_choice`` or ``response_format`` are refused for the same reason (so is
  ``json_schema.description``, which ``ir.ResponseFormat`` cannot hold).
* ``max_tokens`` and ``max_completion_tokens`` are both read into ``max_tokens``; both given and
  different → 400 (param ``max_completion_tokens``). ``encode_request`` writes the name in
  ``options.settings["max_tokens_param"]`` (default ``max_tokens``, which every compatible
  server accepts; providers for OpenAI's reasoning models set ``max_completion_tokens``).
* Messages keep what the IR cannot type as ``Opaque("openai", …)`` parts so an OpenAI→OpenAI
  route loses nothing (other dialects refuse them, clearly): ``{"part": {...}}`` is a content part
  kept verbatim (``file`` parts, unknown types, a known part with extra keys such as
  ``cache_control``); ``{"fields": {...}}`` holds a message's untyped keys (e.g. ``audio``,
  ``prefix``); ``{"tool_call": id, "fields": {...}}`` holds untyped keys of one tool call
  (e.g. Gemini's ``extra_content`` thought signature).
* ``refusal`` (an assistant message key or content part) becomes a ``Text`` part, so every
  dialect sees it. ``reasoning_content`` (or vLLM's ``reasoning``, ignored when both are sent)
  becomes a ``Reasoning`` part first in the message. A tool message's ``ToolResult.name`` is
  filled from the earlier assistant call with that id (Gemini needs it).

Normalisations (``encode_request(parse_request(b))`` equals ``b`` with ``model`` replaced,
except): keys whose value is ``null``, an assistant's ``annotations`` (output-only citations) and
a tool call's ``index`` (echoed from accumulated stream deltas) are dropped; defaults are omitted
(``stream: false``, ``stop: []``, ``tool_calls: []``); a one-element text-part list becomes a
string and a ``stop`` string a one-element list; ``refusal`` is sent as content; ``reasoning`` is
sent as ``reasoning_content``; ``max_tokens``/``max_completion_tokens`` as above;
``stream_options`` only when streaming and ``include_usage`` only when true. (``extra`` is sent
back exactly as received, ``null`` values included.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

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
    ResponseFormat,
    Role,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)

DIALECT_NAME = "openai"

REFUSED_FIELDS = frozenset(
    {"api_base", "base_url", "api_key", "api_version", "extra_headers", "headers", "aws_access_key_id",
     "aws_secret_access_key", "aws_session_token", "vertex_credentials"}
)  # fmt: skip
"""Client-supplied upstream location, credentials or headers: refused with a 400."""

LEGACY_FIELDS = frozenset({"functions", "function_call"})

TYPED_FIELDS = frozenset(
    {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature",
     "top_p", "top_k", "stop", "seed", "n", "response_format", "tools", "tool_choice", "parallel_tool_calls",
     "reasoning_effort", "user"}
)  # fmt: skip
"""Top-level keys the IR types; every other key rides in ``ChatRequest.extra``."""

MAX_N = 128
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1
_ROLES: Mapping[str, Role] = {
    "system": "system",
    "developer": "developer",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
_MESSAGE_KEYS: Mapping[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "tool_calls", "reasoning_content", "refusal"}),
    "tool": frozenset({"role", "content", "name", "tool_call_id"}),
}
_FORMATS = frozenset({"text", "json_object", "json_schema"})


# --------------------------------------------------------------------------- validation helpers


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def _invalid(path: str, expected: str, value: object) -> BadRequest:
    return BadRequest(f"Invalid type for '{path}': expected {expected}, but got {_kind(value)}.", param=path)


def _str(value: object, path: str, *, nonempty: bool = False) -> str:
    if not isinstance(value, str):
        raise _invalid(path, "a string", value)
    if nonempty and not value:
        raise BadRequest(f"'{path}' must not be empty.", param=path)
    return value


def _opt_str(value: object, path: str) -> str | None:
    return None if value is None else _str(value, path)


def _opt_bool(value: object, path: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _invalid(path, "a boolean", value)
    return value


def _opt_int(value: object, path: str, lo: int, hi: int) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(path, "an integer", value)
    if not lo <= value <= hi:
        raise BadRequest(f"'{path}' must be between {lo} and {hi}, got {value}.", param=path)
    return value


def _opt_number(value: object, path: str, lo: float, hi: float) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _invalid(path, "a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"'{path}' must be a finite number.", param=path)
    if not lo <= value <= hi:
        raise BadRequest(f"'{path}' must be between {lo} and {hi}, got {value}.", param=path)
    return value


def _obj(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _invalid(path, "an object", value)
    return value


def _list(value: object, path: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise _invalid(path, "an array", value)
    return value


def _no_other_keys(obj: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    for key, value in obj.items():
        if key not in allowed and value is not None:
            raise UnsupportedFeature(f"'{path}.{key}' is not supported.", param=f"{path}.{key}")


# --------------------------------------------------------------------------- parse_request


def parse_request(body: Mapping[str, Any]) -> ChatRequest:
    """Validate an OpenAI Chat Completions request body and decode it into the IR.

    Raises ``BadRequest`` (``param`` = the offending field's path) for a malformed body and
    ``UnsupportedFeature`` for valid OpenAI the IR cannot carry; see the module docstring.
    """
    if not isinstance(body, Mapping):
        raise BadRequest("The request body must be a JSON object.")
    for key in body:
        if key in REFUSED_FIELDS:
            raise BadRequest(
                f"'{key}' is not accepted: upstream endpoints and credentials come from the gateway's configuration.",
                param=key,
            )
        if key in LEGACY_FIELDS and body[key] is not None:
            raise UnsupportedFeature(
                f"Legacy function calling ('{key}') is not supported; use 'tools' and 'tool_choice'.",
                param=key,
            )
    model = _str(body.get("model"), "model", nonempty=True)
    messages = _parse_messages(body.get("messages"))
    stream = _opt_bool(body.get("stream"), "stream") or False
    include_usage, stream_extra = _parse_stream_options(body.get("stream_options"))
    tools = _parse_tools(body.get("tools"))
    extra = {key: value for key, value in body.items() if key not in TYPED_FIELDS}
    if stream_extra:
        extra["stream_options"] = stream_extra
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        max_tokens=_parse_max_tokens(body),
        temperature=_opt_number(body.get("temperature"), "temperature", 0, 2),
        top_p=_opt_number(body.get("top_p"), "top_p", 0, 1),
        top_k=_opt_int(body.get("top_k"), "top_k", 0, _INT32),
        stop=_parse_stop(body.get("stop")),
        seed=_opt_int(body.get("seed"), "seed", -_INT64 - 1, _INT64),
        n=_opt_int(body.get("n"), "n", 1, MAX_N),
        response_format=_parse_response_format(body.get("response_format")),
        tools=tools,
        tool_choice=_parse_tool_choice(body.get("tool_choice"), tools),
        parallel_tool_calls=_opt_bool(body.get("parallel_tool_calls"), "parallel_tool_calls"),
        reasoning_effort=_opt_str(body.get("reasoning_effort"), "reasoning_effort"),
        user=_opt_str(body.get("user"), "user"),
        extra=extra,
    )


def _parse_stream_options(value: object) -> tuple[bool, dict[str, Any]]:
    if value is None:
        return False, {}
    options = _obj(value, "stream_options")
    include = _opt_bool(options.get("include_usage"), "stream_options.include_usage") or False
    rest = {key: item for key, item in options.items() if key != "include_usage"}
    return include, rest


def _parse_max_tokens(body: Mapping[str, Any]) -> int | None:
    legacy = _opt_int(body.get("max_tokens"), "max_tokens", 1, _INT32)
    modern = _opt_int(body.get("max_completion_tokens"), "max_completion_tokens", 1, _INT32)
    if legacy is not None and modern is not None and legacy != modern:
        raise BadRequest(
            "'max_tokens' and 'max_completion_tokens' are both set and differ; set one of them.",
            param="max_completion_tokens",
        )
    return modern if modern is not None else legacy


def _parse_stop(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    items = _list(value, "stop")
    return tuple(_str(item, f"stop[{i}]") for i, item in enumerate(items))


def _parse_response_format(value: object) -> ResponseFormat | None:
    if value is None:
        return None
    fmt = _obj(value, "response_format")
    kind = fmt.get("type")
    if kind not in _FORMATS:
        if isinstance(kind, str):
            raise UnsupportedFeature(
                f"Unsupported value for 'response_format.type': '{kind}'.", param="response_format.type"
            )
        raise _invalid("response_format.type", "'text', 'json_object' or 'json_schema'", kind)
    if kind != "json_schema":
        _no_other_keys(fmt, frozenset({"type"}), "response_format")
        return ResponseFormat(type="text" if kind == "text" else "json_object")
    _no_other_keys(fmt, frozenset({"type", "json_schema"}), "response_format")
    spec = _obj(fmt.get("json_schema"), "response_format.json_schema")
    _no_other_keys(spec, frozenset({"name", "schema", "strict"}), "response_format.json_schema")
    schema = spec.get("schema")
    return ResponseFormat(
        type="json_schema",
        name=_str(spec.get("name"), "response_format.json_schema.name", nonempty=True),
        schema=None if schema is None else _obj(schema, "response_format.json_schema.schema"),
        strict=_opt_bool(spec.get("strict"), "response_format.json_schema.strict"),
    )


def _parse_tools(value: object) -> tuple[Tool, ...]:
    if value is None:
        return ()
    tools = []
    for i, item in enumerate(_list(value, "tools")):
        path = f"tools[{i}]"
        entry = _obj(item, path)
        _function_type(entry.get("type"), f"{path}.type")
        _no_other_keys(entry, frozenset({"type", "function"}), path)
        fn = _obj(entry.get("function"), f"{path}.function")
        _no_other_keys(fn, frozenset({"name", "description", "parameters", "strict"}), f"{path}.function")
        parameters = fn.get("parameters")
        tools.append(
            Tool(
                name=_str(fn.get("name"), f"{path}.function.name", nonempty=True),
                description=_opt_str(fn.get("description"), f"{path}.function.description"),
                parameters=None if parameters is None else _obj(parameters, f"{path}.function.parameters"),
                strict=_opt_bool(fn.get("strict"), f"{path}.function.strict"),
            )
        )
    return tuple(tools)


def _function_type(kind: object, path: str) -> None:
    if kind == "function":
        return
    if isinstance(kind, str):
        raise UnsupportedFeature(
            f"Unsupported value for '{path}': only 'function' is supported, got '{kind}'.", param=path
        )
    raise _invalid(path, "'function'", kind)


def _parse_tool_choice(value: object, tools: tuple[Tool, ...]) -> ToolChoice | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value == "none":
            return "none"
        if value == "auto":
            return "auto"
        if value == "required":
            return "required"
        raise BadRequest(
            f"Invalid value for 'tool_choice': '{value}'; expected 'none', 'auto', 'required' or an object.",
            param="tool_choice",
        )
    choice = _obj(value, "tool_choice")
    _function_type(choice.get("type"), "tool_choice.type")
    _no_other_keys(choice, frozenset({"type", "function"}), "tool_choice")
    fn = _obj(choice.get("function"), "tool_choice.function")
    _no_other_keys(fn, frozenset({"name"}), "tool_choice.function")
    name = _str(fn.get("name"), "tool_choice.function.name", nonempty=True)
    if all(tool.name != name for tool in tools):
        raise BadRequest(
            f"'tool_choice.function.name' names '{name}', which is not in 'tools'.", param="tool_choice.function.name"
        )
    return NamedToolChoice(name)


def _parse_messages(value: object) -> tuple[Message, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise BadRequest("'messages' must be a non-empty array.", param="messages")
    call_names: dict[str, str] = {}
    return tuple(_parse_message(item, f"messages[{i}]", call_names) for i, item in enumerate(value))


def _parse_message(value: object, path: str, call_names: dict[str, str]) -> Message:
    msg = _obj(value, path)
    role = msg.get("role")
    if role == "function":
        raise UnsupportedFeature(
            f"'{path}.role': the legacy 'function' role is not supported; answer tool calls with 'tool' messages.",
            param=f"{path}.role",
        )
    if not isinstance(role, str) or role not in _ROLES:
        raise BadRequest(
            f"Invalid value for '{path}.role': expected one of system, developer, user, assistant, tool.",
            param=f"{path}.role",
        )
    name = _opt_str(msg.get("name"), f"{path}.name")
    fields = _untyped_fields(msg, role, path)
    if role == "tool":
        call_id = _str(msg.get("tool_call_id"), f"{path}.tool_call_id", nonempty=True)
        content = _parse_content(msg.get("content"), f"{path}.content", required=True)
        result = ToolResult(call_id=call_id, content=content, name=name or call_names.get(call_id))
        parts: tuple[Part, ...] = (result, *fields)
    elif role == "assistant":
        parts = (*_parse_assistant(msg, path, call_names), *fields)
    else:
        parts = (*_parse_content(msg.get("content"), f"{path}.content", required=True), *fields)
    return Message(role=_ROLES[role], parts=parts, name=name)


def _untyped_fields(msg: Mapping[str, Any], role: str, path: str) -> tuple[Part, ...]:
    known = _MESSAGE_KEYS[role]
    fields: dict[str, Any] = {}
    for key, value in msg.items():
        if key in known or value is None:
            continue
        if key == "function_call":
            raise UnsupportedFeature(
                f"'{path}.function_call': legacy function calling is not supported; use 'tool_calls'.",
                param=f"{path}.function_call",
            )
        if role == "assistant" and key in ("annotations", "reasoning"):
            continue  # annotations: output-only; reasoning: read by _parse_assistant
        fields[key] = value
    return (Opaque(DIALECT_NAME, {"fields": fields}),) if fields else ()


def _parse_assistant(msg: Mapping[str, Any], path: str, call_names: dict[str, str]) -> list[Part]:
    parts: list[Part] = []
    reasoning = msg.get("reasoning_content")
    key = "reasoning_content"
    if reasoning is None:
        reasoning, key = msg.get("reasoning"), "reasoning"
    if reasoning is not None:
        parts.append(Reasoning(_str(reasoning, f"{path}.{key}")))
    parts.extend(_parse_content(msg.get("content"), f"{path}.content", required=False))
    refusal = msg.get("refusal")
    if refusal is not None:
        parts.append(Text(_str(refusal, f"{path}.refusal")))
    calls = msg.get("tool_calls")
    if calls is not None:
        for j, item in enumerate(_list(calls, f"{path}.tool_calls")):
            parts.extend(_parse_tool_call(item, f"{path}.tool_calls[{j}]", call_names))
    return parts


def _parse_tool_call(value: object, path: str, call_names: dict[str, str]) -> list[Part]:
    call = _obj(value, path)
    _function_type(call.get("type"), f"{path}.type")
    fn = _obj(call.get("function"), f"{path}.function")
    _no_other_keys(fn, frozenset({"name", "arguments"}), f"{path}.function")
    parsed = ToolCall(
        id=_str(call.get("id"), f"{path}.id", nonempty=True),
        name=_str(fn.get("name"), f"{path}.function.name", nonempty=True),
        arguments=_str(fn.get("arguments"), f"{path}.function.arguments"),
    )
    call_names[parsed.id] = parsed.name
    # "index" is stream-accumulation residue some clients echo back: meaningless in a request.
    fields = {k: v for k, v in call.items() if k not in ("id", "type", "function", "index") and v is not None}
    if fields:
        return [parsed, Opaque(DIALECT_NAME, {"tool_call": parsed.id, "fields": fields})]
    return [parsed]


def _parse_content(value: object, path: str, *, required: bool) -> tuple[Part, ...]:
    if value is None:
        if required:
            raise BadRequest(f"Missing required parameter: '{path}'.", param=path)
        return ()
    if isinstance(value, str):
        return (Text(value),)
    if not isinstance(value, list | tuple):
        raise _invalid(path, "a string, an array of content parts or null", value)
    if not value and required:
        raise BadRequest(f"'{path}' must not be an empty array.", param=path)
    return tuple(_parse_part(item, f"{path}[{j}]") for j, item in enumerate(value))


def _parse_part(value: object, path: str) -> Part:
    part = _obj(value, path)
    kind = _str(part.get("type"), f"{path}.type")
    if kind == "text":
        text = _str(part.get("text"), f"{path}.text")
        return Text(text) if part.keys() <= {"type", "text"} else _opaque_part(part)
    if kind == "refusal":
        return Text(_str(part.get("refusal"), f"{path}.refusal"))
    if kind == "image_url":
        image = _obj(part.get("image_url"), f"{path}.image_url")
        url = _str(image.get("url"), f"{path}.image_url.url", nonempty=True)
        detail = _opt_str(image.get("detail"), f"{path}.image_url.detail")
        plain = part.keys() <= {"type", "image_url"} and image.keys() <= {"url", "detail"}
        return Image(url=url, detail=detail) if plain else _opaque_part(part)
    if kind == "input_audio":
        audio = _obj(part.get("input_audio"), f"{path}.input_audio")
        data = _str(audio.get("data"), f"{path}.input_audio.data", nonempty=True)
        fmt = _str(audio.get("format"), f"{path}.input_audio.format", nonempty=True)
        plain = part.keys() <= {"type", "input_audio"} and audio.keys() <= {"data", "format"}
        return Audio(data=data, format=fmt) if plain else _opaque_part(part)
    return _opaque_part(part)


def _opaque_part(part: Mapping[str, Any]) -> Opaque:
    return Opaque(DIALECT_NAME, {"part": dict(part)})
