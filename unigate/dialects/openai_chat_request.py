"""IR ``ChatRequest`` → OpenAI Chat Completions body for an OpenAI-compatible upstream
(wire-formats.md §1): the inverse of ``openai_chat_parse.parse_request``, whose docstring lists
the decisions and the normalisations a round trip makes.

Message structure: ``Reasoning`` parts become ``reasoning_content`` (joined; signatures cannot be
expressed and are dropped, a redacted block has no text), ``ToolCall`` parts ``tool_calls`` (so
text interleaved with calls is sent as content first, calls after), ``ToolResult`` parts their
own ``tool`` messages (``is_error`` has no OpenAI field and is dropped), ``Opaque("openai")``
parts go back where they came from. Anything else OpenAI cannot carry is an
``UnsupportedFeature``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unigate.dialects.base import DialectOptions
from unigate.dialects.openai_chat_parse import DIALECT_NAME, TYPED_FIELDS
from unigate.errors import UnsupportedFeature
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
    Text,
    Tool,
    ToolCall,
    ToolResult,
)


def encode_request(request: ChatRequest, options: DialectOptions) -> dict[str, Any]:
    """The OpenAI Chat Completions body for ``request``, with ``model = options.upstream_model``.

    ``extra`` is merged back (typed fields win). Raises ``UnsupportedFeature`` for what the
    OpenAI wire or the IR response cannot express: ``n > 1`` (``ChatResponse`` holds one
    choice), foreign ``Opaque`` parts, parts in a role that cannot hold them.
    """
    if request.n is not None and request.n > 1:
        raise UnsupportedFeature("n > 1 is only served on pass-through routes.", param="n")
    body: dict[str, Any] = {"model": options.upstream_model, "messages": _encode_messages(request.messages)}
    if request.stream:
        body["stream"] = True
        stream_options = dict(_mapping(request.extra.get("stream_options")))
        if request.include_usage:
            stream_options["include_usage"] = True
        if stream_options:
            body["stream_options"] = stream_options
    max_tokens = request.max_tokens if request.max_tokens is not None else options.default_max_tokens
    if max_tokens is not None:
        param = options.settings.get("max_tokens_param", "max_tokens")
        body["max_completion_tokens" if param == "max_completion_tokens" else "max_tokens"] = max_tokens
    _put(body, "temperature", request.temperature)
    _put(body, "top_p", request.top_p)
    _put(body, "top_k", request.top_k)
    if request.stop:
        body["stop"] = list(request.stop)
    _put(body, "seed", request.seed)
    _put(body, "n", request.n)
    if request.response_format is not None:
        body["response_format"] = _encode_response_format(request.response_format)
    if request.tools:
        body["tools"] = [_encode_tool(tool) for tool in request.tools]
    if isinstance(request.tool_choice, NamedToolChoice):
        body["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice.name}}
    else:
        _put(body, "tool_choice", request.tool_choice)
    _put(body, "parallel_tool_calls", request.parallel_tool_calls)
    _put(body, "reasoning_effort", request.reasoning_effort)
    _put(body, "user", request.user)
    for key, value in request.extra.items():
        if key not in TYPED_FIELDS and key not in body:
            body[key] = value
    return body


def _put(body: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        body[key] = value


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _encode_response_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type != "json_schema":
        return {"type": fmt.type}
    spec: dict[str, Any] = {"name": fmt.name or "response"}
    _put(spec, "schema", fmt.schema)
    _put(spec, "strict", fmt.strict)
    return {"type": "json_schema", "json_schema": spec}


def _encode_tool(tool: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": tool.name}
    _put(fn, "description", tool.description)
    _put(fn, "parameters", tool.parameters)
    _put(fn, "strict", tool.strict)
    return {"type": "function", "function": fn}


def _encode_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        out.extend(_encode_message(message, f"messages[{i}]"))
    return out


def _encode_message(message: Message, path: str) -> list[dict[str, Any]]:
    """One IR message → one or more OpenAI messages. ``ToolResult`` parts in any role become
    their own ``tool`` messages, first and in order (other dialects put several in one user turn)."""
    fields: dict[str, Any] = {}
    call_fields: dict[str, Mapping[str, Any]] = {}
    results: list[ToolResult] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    content: list[Part] = []
    for part in message.parts:
        if isinstance(part, Opaque) and part.dialect == DIALECT_NAME and "part" not in part.data:
            if "tool_call" in part.data:
                call_fields[str(part.data["tool_call"])] = _mapping(part.data.get("fields"))
            else:
                fields.update(_mapping(part.data.get("fields")))
        elif isinstance(part, ToolResult):
            results.append(part)
        elif isinstance(part, Reasoning):
            if not part.redacted:
                reasoning.append(part.text)
        elif isinstance(part, ToolCall):
            calls.append(part)
        else:
            content.append(part)
    own_name = message.name if message.role == "tool" else None
    out = [_tool_message(result, own_name, path) for result in results]
    if message.role == "tool":
        if not results:
            raise UnsupportedFeature("A tool message must hold a tool result.", param=path)
        if content or calls or reasoning:
            raise UnsupportedFeature("A tool message holds only its tool result.", param=path)
        out[0].update(fields)
        return out
    if (reasoning or calls) and message.role != "assistant":
        raise UnsupportedFeature(f"Tool calls and reasoning cannot appear in a {message.role} message.", param=path)
    if results and not (content or calls or reasoning or fields):
        return out
    msg: dict[str, Any] = {"role": message.role}
    if message.role == "assistant":
        msg["content"] = _encode_content(content, path, assistant=True) if content else None
    else:
        msg["content"] = _encode_content(content, path, assistant=False) if content else ""
    if message.name is not None:
        msg["name"] = message.name
    if reasoning:
        msg["reasoning_content"] = "".join(reasoning)
    if calls:
        msg["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
                **call_fields.get(call.id, {}),
            }
            for call in calls
        ]
    msg.update(fields)
    out.append(msg)
    return out


def _tool_message(result: ToolResult, name: str | None, path: str) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "role": "tool",
        "tool_call_id": result.call_id,
        "content": _encode_content(list(result.content), path, assistant=False) if result.content else "",
    }
    if name is not None:
        msg["name"] = name
    return msg


def _encode_content(parts: list[Part], path: str, *, assistant: bool) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and isinstance(parts[0], Text):
        return parts[0].text
    return [_encode_part(part, path, assistant) for part in parts]


def _encode_part(part: Part, path: str, assistant: bool) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, Opaque) and part.dialect == DIALECT_NAME:
        return dict(_mapping(part.data.get("part")))
    if isinstance(part, Image) and not assistant:
        image = {"url": part.url} if part.detail is None else {"url": part.url, "detail": part.detail}
        return {"type": "image_url", "image_url": image}
    if isinstance(part, Audio) and not assistant:
        return {"type": "input_audio", "input_audio": {"data": part.data, "format": part.format}}
    kind = f"a {part.dialect} block" if isinstance(part, Opaque) else type(part).__name__
    where = "an assistant message" if assistant else "this message"
    raise UnsupportedFeature(f"OpenAI cannot carry {kind} in {where}.", param=path)
