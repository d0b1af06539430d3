"""IR ``ChatRequest`` → Cohere v2 Chat request body (wire-formats.md §7;
https://docs.cohere.com/v2/reference/chat , https://docs.cohere.com/v2/docs/tool-use ,
https://docs.cohere.com/docs/reasoning).

Cohere v2 is close to OpenAI's shape (roles ``system``/``user``/``assistant``/``tool``, content
strings or ``text``/``image_url`` parts, ``tool_calls`` with JSON-text ``arguments``, function
tools), so messages map one to one, in order, and are not merged:

* ``system``/``developer`` texts are hoisted, in order, into ONE leading ``system`` message (a
  string, or a list of ``text`` items when there are several): Cohere answers "system turn must
  be the first in the list" (the errors reference). Non-text system content → 400.
* ``user``: a single text becomes a string; otherwise ``text`` and ``image_url`` items (images as
  ``data:`` URIs or http(s) URLs, which Cohere fetches; ``detail`` kept). Audio → 400. Tool results
  inside a user message (Anthropic style) become ``tool`` messages placed before it.
* ``assistant``: texts → ``content``; every ``ToolCall`` → ``tool_calls`` (``arguments`` verbatim,
  ``""`` sent as ``"{}"``); reasoning text → ``tool_plan`` when the message has tool calls (Cohere
  asks for the plan back with its calls; the response decoder turns ``tool_plan`` into reasoning),
  else dropped (Cohere documents no way to replay past thinking, and the model does not need it).
  A message left with neither text nor calls carries nothing and is skipped.
* ``tool``: ``{"role": "tool", "tool_call_id", "content"}``, text only (a string, or ``text``
  items); images and ``is_error`` have no Cohere slot → 400.

Parameters:

==========================  =============================================================
``max_tokens``              ``max_tokens`` (else ``options.default_max_tokens``; unset →
                            omitted, Cohere then allows the model's maximum).
``temperature``             as is (Cohere: "a non-negative float").
``top_p``, ``top_k``        ``p``, ``k`` (Cohere checks its own ranges: p 0.01–0.99, k ≤ 500).
``stop``                    ``stop_sequences``; more than ``MAX_STOP_SEQUENCES`` (5) → 400.
``seed``                    as is.
``n`` > 1                   400: one choice per request.
``tools``                   ``{"type": "function", "function": {name, description,
                            parameters}}`` (no parameters → the empty object schema:
                            Cohere requires the field); ``strict`` is one switch for all tools in Cohere
                            (``strict_tools``): all strict → ``strict_tools: true``, a mix → 400.
``tool_choice``             none → ``NONE``, required → ``REQUIRED``, auto → omitted (Cohere's
                            default); named → only that tool is declared, with ``REQUIRED``
                            (forces exactly that function, which is what a named choice means).
``parallel_tool_calls``     ``false`` with tools → 400 (Cohere has no switch).
``response_format``         json_object → ``{"type": "json_object"}``; json_schema →
                            ``{"type": "json_object", "json_schema": schema}`` (the schema's
                            ``name``/``strict`` have no slot: Cohere always follows a given schema).
``reasoning_effort``        ``thinking``: ``none`` → disabled, else enabled with
                            ``token_budget`` from ``THINKING_BUDGETS``; unknown → 400.
``user``                    dropped: Cohere has no end-user field and it does not change the answer.
==========================  =============================================================

``extra`` policy: Cohere-native keys in ``NATIVE_EXTRA`` pass through (``thinking``,
``safety_mode``, ``documents``, ``citation_options``, ``strict_tools``, ``priority``);
``frequency_penalty``/``presence_penalty`` keep their names; keys in ``IGNORED_EXTRA`` do not change
the output and are dropped; keys in ``DEFAULT_ONLY_EXTRA`` are accepted only at their no-op value
(``logprobs: true`` → 400: Cohere can return log probabilities, but OpenAI's ``logprobs`` shape has
no slot in the IR, so they could not reach the client); any other non-null key → 400 naming it.

Left out because they do not change what the model is asked: a message's ``name``, OpenAI's
``cache_control`` on text/image parts (a prompt-caching hint for Anthropic), a tool call's
``extra_content`` (Gemini's thought signature), reasoning with no text, signed or redacted
reasoning's signature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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
    Tool,
    ToolCall,
    ToolResult,
)

MAX_STOP_SEQUENCES = 5
"""Cohere: "A list of up to 5 strings" (``stop_sequences``)."""

THINKING_BUDGETS: Mapping[str, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 24576,
    "max": 31000,
}
"""OpenAI ``reasoning_effort`` → ``thinking.token_budget`` (``none`` → ``{"type": "disabled"}``).
Cohere recommends 31K as the budget for reasoning "until the maximum limit", which is ``max``."""

NATIVE_EXTRA = frozenset({"thinking", "safety_mode", "documents", "citation_options", "strict_tools", "priority"})
PENALTIES = ("frequency_penalty", "presence_penalty")
IGNORED_EXTRA = frozenset(
    {
        "stream_options",
        "metadata",
        "store",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "prediction",
        "max_completion_tokens",  # already read into ``max_tokens`` by the OpenAI parser
    }
)
DEFAULT_ONLY_EXTRA: Mapping[str, tuple[object, ...]] = {
    "logprobs": (False,),
    "top_logprobs": (0,),
    "logit_bias": ({},),
    "modalities": (["text"],),
}
EMPTY_PARAMETERS: Mapping[str, Any] = {"type": "object", "properties": {}}
_OPENAI = "openai"  # the OpenAI dialect's name, for the Opaque forms read here (no cross-import)
_CACHEABLE_PART_KEYS: Mapping[str, frozenset[str]] = {
    "text": frozenset({"type", "text", "cache_control"}),
    "image_url": frozenset({"type", "image_url", "cache_control"}),
}


def encode_request(request: ChatRequest, options: DialectOptions) -> dict[str, Any]:
    """The Cohere body for ``request``; raises ``UnsupportedFeature``/``BadRequest`` for what
    Cohere cannot express (module docstring)."""
    native = _check_extra(request.extra)
    if request.n is not None and request.n != 1:
        if request.n < 1:
            raise BadRequest("n must be at least 1 (Cohere returns one choice)", param="n")
        raise UnsupportedFeature("Cohere returns one choice per request: 'n' must be 1", param="n")
    messages = _messages(request.messages)
    if not messages:
        raise BadRequest("messages must contain at least one message", param="messages")
    body: dict[str, Any] = {"model": options.upstream_model, "messages": messages}

    declared, tool_choice = _tools(request)
    if declared:
        body["tools"] = [_tool(t) for t in declared]
        if _strict(declared):
            body["strict_tools"] = True
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if request.parallel_tool_calls is False and request.tools:
        raise UnsupportedFeature(
            "Cohere has no switch to turn parallel tool calls off (parallel_tool_calls=false)",
            param="parallel_tool_calls",
        )

    max_tokens = request.max_tokens or options.default_max_tokens
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["p"] = request.top_p
    if request.top_k is not None:
        body["k"] = request.top_k
    if request.stop:
        if len(request.stop) > MAX_STOP_SEQUENCES:
            raise UnsupportedFeature(f"Cohere accepts at most {MAX_STOP_SEQUENCES} stop sequences", param="stop")
        body["stop_sequences"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    response_format = _response_format(request)
    if response_format is not None:
        body["response_format"] = response_format
    thinking = _thinking(request, native)
    if thinking is not None:
        body["thinking"] = thinking
    for key in PENALTIES:
        if request.extra.get(key) is not None:
            body[key] = request.extra[key]
    for key, value in native.items():
        if key == "strict_tools" and "strict_tools" in body and value is not True:
            raise BadRequest("strict_tools disagrees with the tools' strict flags", param="strict_tools")
        if key != "thinking":
            body[key] = value
    body["stream"] = request.stream
    return body


# ---- parameters ------------------------------------------------------------------------------------


def _check_extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the ``extra`` policy (module docstring); returns the native keys that pass."""
    native: dict[str, Any] = {}
    for key, value in extra.items():
        if value is None or key in IGNORED_EXTRA or key in PENALTIES:
            continue
        if key in NATIVE_EXTRA:
            native[key] = value
        elif key in DEFAULT_ONLY_EXTRA:
            if value not in DEFAULT_ONLY_EXTRA[key]:
                reason = "log probabilities are not translated" if "logprob" in key else "it is not supported"
                raise UnsupportedFeature(f"'{key}' cannot be sent to Cohere models: {reason}", param=key)
        else:
            raise UnsupportedFeature(f"'{key}' cannot be sent to Cohere models", param=key)
    return native


def _thinking(request: ChatRequest, native: Mapping[str, Any]) -> dict[str, Any] | None:
    effort = request.reasoning_effort
    if "thinking" in native:
        given = native["thinking"]
        if effort is not None:
            raise BadRequest("give either reasoning_effort or thinking, not both", param="thinking")
        if not isinstance(given, Mapping) or not isinstance(given.get("type"), str):
            raise BadRequest("thinking must be an object with a type", param="thinking")
        return dict(given)
    if effort is None:
        return None
    if effort == "none":
        return {"type": "disabled"}
    budget = THINKING_BUDGETS.get(effort)
    if budget is None:
        known = ", ".join(("none", *THINKING_BUDGETS))
        raise BadRequest(f"unknown reasoning_effort {effort!r} (use one of {known})", param="reasoning_effort")
    return {"type": "enabled", "token_budget": budget}


def _response_format(request: ChatRequest) -> dict[str, Any] | None:
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.schema is None:
        raise BadRequest("response_format json_schema needs a schema", param="response_format")
    return {"type": "json_object", "json_schema": dict(fmt.schema)}


def _tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    # ``parameters`` is required by Cohere (``ToolV2Function``); OpenAI's "no parameters" is the
    # empty object schema, which means the same.
    function["parameters"] = dict(tool.parameters) if tool.parameters is not None else dict(EMPTY_PARAMETERS)
    return {"type": "function", "function": function}


def _strict(tools: tuple[Tool, ...]) -> bool:
    """``strict_tools`` for the declared tools: all strict → True, none → False, a mix → 400."""
    flags = {bool(t.strict) for t in tools}
    if len(flags) > 1:
        raise UnsupportedFeature(
            "Cohere applies 'strict' to all tools at once (strict_tools): mark every tool strict or none",
            param="tools",
        )
    return flags == {True}


def _tools(request: ChatRequest) -> tuple[tuple[Tool, ...], str | None]:
    """The tools to declare and ``tool_choice`` (see the module docstring). Without tools, auto
    and none are what happens anyway (left out); required and named cannot be met → 400."""
    choice = request.tool_choice
    if not request.tools:
        if choice is None or choice in ("auto", "none"):
            return (), None
        raise BadRequest("tool_choice requires tools", param="tool_choice")
    if isinstance(choice, NamedToolChoice):
        named = tuple(t for t in request.tools if t.name == choice.name)
        if not named:
            raise BadRequest(f"tool_choice names unknown tool {choice.name!r}", param="tool_choice")
        return named[:1], "REQUIRED"
    return request.tools, {"none": "NONE", "required": "REQUIRED"}.get(choice or "auto")


# ---- messages ----------------------------------------------------------------------------------------


def _messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The ``messages`` list: one leading system message, then every turn in order (module docstring)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role in ("system", "developer"):
            system.extend(t for t in (_system_text(p) for p in message.parts) if t)
        elif message.role == "tool":
            if not all(isinstance(p, ToolResult) for p in message.parts):
                raise BadRequest("a tool message must hold tool results only", param="messages")
            out.extend(_tool_message(p) for p in message.parts if isinstance(p, ToolResult))
        elif message.role == "user":
            results = [_tool_message(p) for p in message.parts if isinstance(p, ToolResult)]
            rest = [p for p in message.parts if not isinstance(p, ToolResult)]
            out.extend(results)
            if rest or not results:
                out.append({"role": "user", "content": _user_content(rest)})
        else:
            assistant = _assistant(message.parts)
            if assistant is not None:
                out.append(assistant)
    if system:
        content: str | list[dict[str, Any]] = system[0] if len(system) == 1 else [_text(t) for t in system]
        out.insert(0, {"role": "system", "content": content})
    return out


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _cacheable(part: Opaque) -> dict[str, Any] | None:
    """An OpenAI text or image part kept verbatim only for its ``cache_control`` (an Anthropic
    prompt-caching hint, meaningless to Cohere): the part without it. None for anything else."""
    data = part.data.get("part") if part.dialect == _OPENAI else None
    kind = data.get("type") if isinstance(data, Mapping) else None
    allowed = _CACHEABLE_PART_KEYS.get(kind) if isinstance(kind, str) else None
    if not isinstance(data, Mapping) or allowed is None or not data.keys() <= allowed:
        return None
    image = data.get("image_url")
    if kind == "text" and isinstance(data.get("text"), str):
        return _text(data["text"])
    if isinstance(image, Mapping) and isinstance(image.get("url"), str) and image.keys() <= {"url", "detail"}:
        detail = image.get("detail")
        return _image(Image(image["url"], detail if isinstance(detail, str) else None))
    return None


def _refuse(part: Part, where: str) -> UnsupportedFeature:
    if isinstance(part, Audio):
        return UnsupportedFeature("Cohere models take no audio input", param="messages")
    if isinstance(part, Opaque):
        data = part.data.get("part")
        kind = data.get("type") if isinstance(data, Mapping) else None
        what = f"{kind!r} content part" if isinstance(kind, str) else f"{part.dialect} {'/'.join(sorted(part.data))}"
        return UnsupportedFeature(f"{what} cannot be sent in a Cohere {where}", param="messages")
    return UnsupportedFeature(f"{type(part).__name__} cannot appear in a Cohere {where}", param="messages")


def _system_text(part: Part) -> str:
    if isinstance(part, Text):
        return part.text
    if isinstance(part, Opaque):
        block = _cacheable(part)
        if block is not None and block["type"] == "text":
            return str(block["text"])
    raise UnsupportedFeature("Cohere system messages hold text only", param="messages")


def _user_content(parts: Sequence[Part]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and isinstance(parts[0], Text):
        return parts[0].text
    items: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Text):
            items.append(_text(part.text))
        elif isinstance(part, Image):
            items.append(_image(part))
        elif isinstance(part, Opaque) and (block := _cacheable(part)) is not None:
            items.append(block)
        else:
            raise _refuse(part, "user message")
    return items if items else ""


def _image(image: Image) -> dict[str, Any]:
    """``image_url`` with the URL as given: Cohere takes "a base64 data URI or a web URL"
    (``ImageUrl`` in the SDK); ``detail`` (auto/low/high) has the same meaning as OpenAI's."""
    url = image.url
    if url.startswith("data:"):
        header, comma, _ = url[5:].partition(",")
        if not comma or "base64" not in header.split(";")[1:]:
            raise UnsupportedFeature("image data URIs must be base64-encoded", param="messages")
    elif not url.startswith(("https://", "http://")):
        raise UnsupportedFeature("images must be a data: URI or an http(s) URL", param="messages")
    image_url: dict[str, Any] = {"url": url}
    if image.detail is not None:
        image_url["detail"] = image.detail
    return {"type": "image_url", "image_url": image_url}


def _is_call_fields(part: Part) -> bool:
    """A tool call's untyped keys kept by the OpenAI dialect; only ``extra_content`` (Gemini's
    thought signature) is meaningless here and may be left out."""
    if not isinstance(part, Opaque) or part.dialect != _OPENAI or "tool_call" not in part.data:
        return False
    fields = part.data.get("fields")
    return isinstance(fields, Mapping) and fields.keys() <= {"extra_content"}


def _assistant(parts: tuple[Part, ...]) -> dict[str, Any] | None:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    plan: list[str] = []
    for part in parts:
        if isinstance(part, Text):
            if part.text:
                texts.append(part.text)
        elif isinstance(part, ToolCall):
            arguments = part.arguments if part.arguments.strip() else "{}"
            calls.append({"id": part.id, "type": "function", "function": {"name": part.name, "arguments": arguments}})
        elif isinstance(part, Reasoning):
            if part.text and not part.redacted:
                plan.append(part.text)
        elif _is_call_fields(part):
            continue
        elif isinstance(part, Opaque) and (block := _cacheable(part)) is not None and block["type"] == "text":
            if block["text"]:
                texts.append(str(block["text"]))
        else:
            raise _refuse(part, "assistant message")
    if not texts and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant"}
    if calls:
        message["tool_calls"] = calls
        if plan:
            message["tool_plan"] = "".join(plan)
    if texts:
        message["content"] = texts[0] if len(texts) == 1 else [_text(t) for t in texts]
    return message


def _tool_message(result: ToolResult) -> dict[str, Any]:
    if result.is_error:
        raise UnsupportedFeature(
            "Cohere tool messages have no error flag: put the error in the result's text", param="messages"
        )
    texts: list[str] = []
    for part in result.content:
        if isinstance(part, Text):
            texts.append(part.text)
        elif isinstance(part, Opaque) and (block := _cacheable(part)) is not None and block["type"] == "text":
            texts.append(str(block["text"]))
        else:
            raise UnsupportedFeature("Cohere tool results hold text only", param="messages")
    content: str | list[dict[str, Any]] = texts[0] if len(texts) == 1 else [_text(t) for t in texts if t] or ""
    return {"role": "tool", "tool_call_id": result.call_id, "content": content}
