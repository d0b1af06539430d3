"""IR ``ChatRequest`` → Anthropic Messages request body (wire-formats.md §2; Vertex §4).

Structure (hand-written): ``system``/``developer`` messages are hoisted into the top-level
``system`` list (Anthropic has no mid-conversation system turn); ``tool`` messages become
``tool_result`` blocks in a ``user`` turn, each keeping its own ``tool_use_id``; consecutive
same-role turns are merged into one, so several tool results land in ONE user message; inside a
user turn ``tool_result`` blocks go first (Anthropic 400s otherwise), inside an assistant turn
``thinking``/``redacted_thinking`` blocks go first. Every assistant ``ToolCall`` becomes a
``tool_use`` block whose ``input`` is the parsed arguments object.

Parameters (table-like, each choice documented where it is made):

==========================  =============================================================
``max_tokens``              required by Anthropic: the request's value, else
                            ``options.default_max_tokens``, else ``DEFAULT_MAX_TOKENS``.
``temperature``             0 to 1 only (Anthropic's range); above 1 → 400, never clamped.
``top_p``, ``top_k``        as is. These three need ``anthropic-version: 2023-06-01``:
                            the provider must send ``ANTHROPIC_VERSION``.
``stop``                    ``stop_sequences``.
``user``                    ``metadata.user_id`` (so is ``safety_identifier``).
``tools``                   ``{name, description, input_schema, strict}``.
``tool_choice``             auto → auto, required → any, named → tool, none → none;
                            ``parallel_tool_calls: false`` → ``disable_parallel_tool_use``.
``reasoning_effort``        ``thinking`` with a budget from ``THINKING_BUDGETS`` (below).
``response_format``         json_schema → ``output_config.format``; json_object → 400
                            (Anthropic has no schema-less JSON mode).
``seed``, ``n`` > 1         400: Anthropic has neither; dropping them would change the output.
==========================  =============================================================

``extra`` policy: Anthropic-native keys in ``NATIVE_EXTRA`` pass through; OpenAI keys in
``IGNORED_EXTRA`` do not affect the generated output and are dropped; OpenAI keys in
``DEFAULT_ONLY_EXTRA`` are accepted only at their no-op value (``logprobs: false``, penalties 0);
any other non-null key is refused with a 400 naming it, because we cannot know it is harmless.

Content: images are base64 (``data:`` URI; jpeg/png/gif/webp) or ``url`` sources; audio → 400;
``Opaque`` blocks of this dialect go back verbatim; OpenAI text/image parts kept verbatim for
their ``cache_control`` become blocks with that ``cache_control``; other foreign ``Opaque`` → 400.

Left out because they do not change what the model is asked (each has no Anthropic slot): a
message's ``name``, an image's ``detail``, a tool result's ``name`` (results are matched by id),
``response_format``'s schema ``name`` and ``strict``, OpenAI ``metadata`` tags, the keys in
``IGNORED_EXTRA``, empty text parts, empty messages, reasoning without a signature, and a tool
call's ``extra_content`` (Gemini's thought signature). A system message in mid-conversation is
hoisted like the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from unigate.dialects.base import DialectOptions, arguments_object
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

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` header a provider must send with these bodies: under ``2026-10-21``
the API refuses ``temperature``/``top_p``/``top_k`` (wire-formats.md §2, "API versions")."""

VERTEX_VERSION = "vertex-2023-10-16"
"""``anthropic_version`` in the body for Claude on Vertex (wire-formats.md §4)."""

DEFAULT_MAX_TOKENS = 4096
"""Used when neither the request nor ``options.default_max_tokens`` sets ``max_tokens``: every
Claude model accepts it (the smallest output limit of a current model is 4096), and a provider
that knows better passes a per-model default in ``options``."""

MIN_THINKING_BUDGET = 1024
THINKING_BUDGETS: Mapping[str, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
    "max": 49152,
}
"""OpenAI ``reasoning_effort`` → ``thinking.budget_tokens`` (``none`` → ``{"type":"disabled"}``).

Anthropic counts thinking inside ``max_tokens`` (budget < max_tokens), as OpenAI counts reasoning
inside ``max_completion_tokens``. So: when the client set ``max_tokens`` it stays the cap and the
budget shrinks to ``max_tokens - 1`` if needed (``max_tokens`` ≤ 1024 cannot hold the minimum
budget → 400); when ``max_tokens`` was defaulted it becomes default + budget, so the answer keeps
its default room after thinking. The same raise applies to a ``thinking`` object passed in
``extra``. Anthropic requires ``tool_choice`` auto or none with thinking on: required/named → 400.
"""

NATIVE_EXTRA = frozenset({"metadata", "thinking", "service_tier", "output_config", "cache_control"})
IGNORED_EXTRA = frozenset(
    {"store", "stream_options", "prompt_cache_key", "prompt_cache_retention", "safety_identifier"}
)
DEFAULT_ONLY_EXTRA: Mapping[str, tuple[object, ...]] = {
    "logprobs": (False,),
    "top_logprobs": (0,),
    "logit_bias": ({},),
    "frequency_penalty": (0,),
    "presence_penalty": (0,),
    "modalities": (["text"],),
}
_SERVICE_TIERS: Mapping[str, str] = {
    "auto": "auto",
    "standard_only": "standard_only",
    "default": "standard_only",
}
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def encode_request(request: ChatRequest, options: DialectOptions, *, vertex: bool = False) -> dict[str, Any]:
    """The Anthropic body for ``request``; for Vertex no ``model`` and ``anthropic_version`` instead."""
    body: dict[str, Any] = {"anthropic_version": VERTEX_VERSION} if vertex else {"model": options.upstream_model}
    extra = _check_extra(request.extra)
    if request.seed is not None:
        raise UnsupportedFeature("Anthropic models do not support 'seed'", param="seed")
    if request.n is not None and request.n != 1:
        raise UnsupportedFeature("Anthropic models return one choice: 'n' must be 1", param="n")

    system, messages = _conversation(request.messages)
    if not messages:
        raise BadRequest("messages must contain at least one user or assistant message", param="messages")
    if system:
        body["system"] = system
    body["messages"] = messages

    explicit = _max_tokens(request)
    thinking = _thinking(request, extra)
    body["max_tokens"] = explicit or options.default_max_tokens or DEFAULT_MAX_TOKENS
    if thinking is not None:
        budget = thinking.get("budget_tokens") if thinking.get("type") == "enabled" else None
        if isinstance(budget, int):
            if explicit is None:
                body["max_tokens"] += budget
            elif "thinking" not in extra:
                if explicit <= MIN_THINKING_BUDGET:
                    raise UnsupportedFeature(
                        f"with reasoning on, max_tokens must exceed {MIN_THINKING_BUDGET}", param="max_tokens"
                    )
                thinking = {**thinking, "budget_tokens": min(budget, explicit - 1)}
        body["thinking"] = thinking

    if request.tools:
        body["tools"] = [_tool(t.name, t.description, t.parameters, t.strict) for t in request.tools]
    tool_choice = _tool_choice(request)
    if tool_choice is not None:
        thinking_on = thinking is not None and thinking.get("type") in ("enabled", "adaptive")
        if thinking_on and tool_choice["type"] in ("any", "tool"):
            raise UnsupportedFeature(
                "Anthropic allows only tool_choice auto or none while reasoning is on", param="tool_choice"
            )
        body["tool_choice"] = tool_choice

    if request.temperature is not None:
        if not 0 <= request.temperature <= 1:
            raise UnsupportedFeature("Anthropic accepts temperature from 0 to 1", param="temperature")
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.top_k is not None:
        body["top_k"] = request.top_k
    if request.stop:
        body["stop_sequences"] = list(request.stop)

    metadata = _metadata(request, extra)
    if metadata:
        body["metadata"] = metadata
    output_config = _output_config(request, extra)
    if output_config:
        body["output_config"] = output_config
    if "service_tier" in extra:
        tier = _SERVICE_TIERS.get(extra["service_tier"]) if isinstance(extra["service_tier"], str) else None
        if tier is None:
            raise UnsupportedFeature(
                f"service_tier {extra['service_tier']!r} has no Anthropic equivalent", param="service_tier"
            )
        body["service_tier"] = tier
    if "cache_control" in extra:
        body["cache_control"] = extra["cache_control"]
    body["stream"] = request.stream
    return body


def _check_extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the ``extra`` policy (module docstring); returns the native keys that pass."""
    native: dict[str, Any] = {}
    for key, value in extra.items():
        if value is None or key in IGNORED_EXTRA or key == "max_completion_tokens":
            continue
        if key in NATIVE_EXTRA:
            native[key] = value
        elif key in DEFAULT_ONLY_EXTRA:
            if value not in DEFAULT_ONLY_EXTRA[key]:
                raise UnsupportedFeature(f"Anthropic models do not support '{key}'", param=key)
        else:
            raise UnsupportedFeature(f"'{key}' cannot be sent to Anthropic models", param=key)
    return native


def _max_tokens(request: ChatRequest) -> int | None:
    """The client's own cap, from ``max_tokens`` or ``max_completion_tokens``; None when unset."""
    value: object = request.max_tokens
    alias = request.extra.get("max_completion_tokens")
    if alias is not None:
        if value is not None and value != alias:
            raise BadRequest("max_tokens and max_completion_tokens disagree", param="max_tokens")
        value = alias
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest("max_tokens must be a positive integer", param="max_tokens")
    return value


def _thinking(request: ChatRequest, extra: Mapping[str, Any]) -> dict[str, Any] | None:
    effort = request.reasoning_effort
    if "thinking" in extra:
        if effort is not None:
            raise BadRequest("give either reasoning_effort or thinking, not both", param="thinking")
        if not isinstance(extra["thinking"], Mapping) or not isinstance(extra["thinking"].get("type"), str):
            raise BadRequest("thinking must be an object with a type", param="thinking")
        return dict(extra["thinking"])
    if effort is None:
        return None
    if effort == "none":
        return {"type": "disabled"}
    budget = THINKING_BUDGETS.get(effort)
    if budget is None:
        raise BadRequest(f"unknown reasoning_effort {effort!r}", param="reasoning_effort")
    return {"type": "enabled", "budget_tokens": budget}


def _metadata(request: ChatRequest, extra: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata.user_id`` from ``user`` (or ``safety_identifier``, OpenAI's newer name for it) or a
    native ``metadata.user_id``. Other ``metadata`` keys are OpenAI's stored-completion tags: they
    do not affect the output and Anthropic would refuse them, so they are dropped."""
    given = extra.get("metadata", {})
    if not isinstance(given, Mapping):
        raise BadRequest("metadata must be an object", param="metadata")
    ids = [v for v in (request.user, given.get("user_id")) if v is not None]
    if not ids and request.extra.get("safety_identifier") is not None:
        ids = [request.extra["safety_identifier"]]
    if not all(isinstance(v, str) for v in ids):
        raise BadRequest("user must be a string", param="user")
    if len(set(ids)) > 1:
        raise BadRequest("user and metadata.user_id disagree", param="user")
    return {"user_id": ids[0]} if ids else {}


def _output_config(request: ChatRequest, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Structured output: OpenAI ``json_schema`` → ``output_config.format`` (Anthropic structured
    outputs, typed in the SDK's ``OutputConfigParam``; model-dependent, an unsupported model
    answers 400). The schema ``name`` has no slot and only labels the schema; ``strict`` is moot
    because Anthropic always constrains to the schema."""
    given = extra.get("output_config", {})
    if not isinstance(given, Mapping):
        raise BadRequest("output_config must be an object", param="output_config")
    config = dict(given)
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return config
    if fmt.type == "json_object":
        raise UnsupportedFeature(
            "Anthropic has no JSON mode without a schema: use response_format json_schema",
            param="response_format",
        )
    if fmt.schema is None:
        raise BadRequest("response_format json_schema needs a schema", param="response_format")
    if "format" in config:
        raise BadRequest("give either response_format or output_config.format", param="response_format")
    config["format"] = {"type": "json_schema", "schema": dict(fmt.schema)}
    return config


def _tool(
    name: str, description: str | None, parameters: Mapping[str, Any] | None, strict: bool | None
) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": name}
    if description is not None:
        tool["description"] = description
    tool["input_schema"] = dict(parameters) if parameters is not None else {"type": "object", "properties": {}}
    if strict is not None:
        tool["strict"] = strict
    return tool


def _tool_choice(request: ChatRequest) -> dict[str, Any] | None:
    """OpenAI ``tool_choice`` → Anthropic. ``none`` is ``{"type":"none"}`` (uni-api sent ``any``:
    the opposite). Without tools, auto/none are what happens anyway and are left out (Anthropic
    refuses a ``tool_choice`` without ``tools``); required/named cannot be met → 400."""
    choice = request.tool_choice
    disable = request.parallel_tool_calls is False
    if not request.tools:
        if choice is None or choice in ("auto", "none"):
            return None
        raise BadRequest("tool_choice requires tools", param="tool_choice")
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, NamedToolChoice):
        if all(t.name != choice.name for t in request.tools):
            raise BadRequest(f"tool_choice names unknown tool {choice.name!r}", param="tool_choice")
        result: dict[str, Any] = {"type": "tool", "name": choice.name}
    elif choice == "required":
        result = {"type": "any"}
    elif choice == "auto" or disable:
        result = {"type": "auto"}
    else:
        return None
    if disable:
        result["disable_parallel_tool_use"] = True
    return result


def _conversation(messages: tuple[Message, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split into the ``system`` blocks and alternating user/assistant turns."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role in ("system", "developer"):
            system.extend(_system_block(p) for p in message.parts if not _carries_nothing(p))
            continue
        role = "assistant" if message.role == "assistant" else "user"
        convert = _assistant_block if role == "assistant" else _user_block
        if message.role == "tool" and not all(isinstance(p, ToolResult) for p in message.parts):
            raise BadRequest("a tool message must hold tool results only", param="messages")
        blocks = [convert(p) for p in message.parts if not _carries_nothing(p)]
        if not blocks:
            continue  # an empty message carries nothing, and Anthropic refuses empty content
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        first = ("tool_result",) if turn["role"] == "user" else ("thinking", "redacted_thinking")
        turn["content"].sort(key=lambda block: block.get("type") not in first)  # stable partition
    return system, turns


def _carries_nothing(part: Part) -> bool:
    """Parts left out without changing the meaning: empty text (Anthropic refuses empty text
    blocks); unsigned reasoning (from another provider or echoed by a client: Anthropic needs the
    signature, and Claude does not see past turns' thinking anyway); a tool call's
    ``extra_content`` kept by the OpenAI dialect (Gemini's thought signature, meaningless here)."""
    if isinstance(part, Text):
        return not part.text
    if isinstance(part, Reasoning):
        return not part.signature
    if isinstance(part, Opaque) and part.dialect == "openai" and "tool_call" in part.data:
        fields = part.data.get("fields")
        return isinstance(fields, Mapping) and fields.keys() <= {"extra_content"}
    return False


_CACHEABLE_PART_KEYS: Mapping[str, frozenset[str]] = {
    "text": frozenset({"type", "text", "cache_control"}),
    "image_url": frozenset({"type", "image_url", "cache_control"}),
}


def _opaque_block(part: Opaque, role: str) -> dict[str, Any]:
    """An ``Opaque`` part: this dialect's own blocks go back verbatim. From the OpenAI dialect, a
    text or image part kept verbatim because it carries ``cache_control`` (how OpenAI-format
    clients ask for Anthropic prompt caching) becomes the block with its ``cache_control``.
    Anything else from another dialect is refused, naming what it is."""
    if part.dialect == "anthropic":
        return dict(part.data)
    data = part.data.get("part") if part.dialect == "openai" else None
    kind = data.get("type") if isinstance(data, Mapping) else None
    allowed = _CACHEABLE_PART_KEYS.get(kind) if isinstance(kind, str) else None
    if isinstance(data, Mapping) and allowed is not None and data.keys() <= allowed:
        image = data.get("image_url")
        block: dict[str, Any] | None = None
        if kind == "text" and isinstance(data.get("text"), str):
            block = {"type": "text", "text": data["text"]}
        elif isinstance(image, Mapping) and isinstance(image.get("url"), str) and image.keys() <= {"url", "detail"}:
            block = _image(Image(image["url"]))
        if block is not None:
            if "cache_control" in data:
                block["cache_control"] = data["cache_control"]
            return block
    what = f"{kind!r} content part" if isinstance(kind, str) else f"{part.dialect} {'/'.join(sorted(part.data))}"
    raise UnsupportedFeature(f"{what} cannot be sent in an Anthropic {role} message", param="messages")


def _system_block(part: Part) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, Opaque):
        block = _opaque_block(part, "system")
        if block.get("type") == "text":
            return block
    raise UnsupportedFeature("Anthropic system prompts hold text only", param="messages")


def _user_block(part: Part) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, Image):
        return _image(part)
    if isinstance(part, ToolResult):
        return _tool_result(part)
    return _common_block(part, "user")


def _assistant_block(part: Part) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    if isinstance(part, ToolCall):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": arguments_object(part)}
    if isinstance(part, Reasoning):
        # Signed thinking goes back unmodified (Anthropic verifies the signature).
        if part.redacted:
            return {"type": "redacted_thinking", "data": part.signature}
        return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    return _common_block(part, "assistant")


def _common_block(part: Part, role: str) -> dict[str, Any]:
    if isinstance(part, Opaque):
        return _opaque_block(part, role)
    if isinstance(part, Audio):
        raise UnsupportedFeature("Anthropic models do not accept audio input", param="messages")
    raise UnsupportedFeature(f"{type(part).__name__} cannot appear in an Anthropic {role} message", param="messages")


def _tool_result(result: ToolResult) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": result.call_id}
    content: list[dict[str, Any]] = []
    for part in result.content:
        if isinstance(part, Text):
            if part.text:
                content.append({"type": "text", "text": part.text})
        elif isinstance(part, Image):
            content.append(_image(part))
        elif isinstance(part, Opaque):
            converted = _opaque_block(part, "tool result")
            if converted.get("type") not in ("text", "image"):
                raise UnsupportedFeature("Anthropic tool results hold text and images only", param="messages")
            content.append(converted)
        else:
            raise UnsupportedFeature("Anthropic tool results hold text and images only", param="messages")
    if len(content) == 1 and content[0].keys() == {"type", "text"}:
        block["content"] = content[0]["text"]
    elif content:
        block["content"] = content
    if result.is_error:
        block["is_error"] = True
    return block


def _image(image: Image) -> dict[str, Any]:
    """A ``data:`` URI → base64 source; an http(s) URL → url source (Anthropic fetches it).
    ``detail`` has no Anthropic slot; it is a resolution hint and is not sent."""
    url = image.url
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        media_type, *params = header.split(";")
        media_type = media_type.strip().lower()
        if media_type == "image/jpg":
            media_type = "image/jpeg"
        if not comma or "base64" not in params:
            raise UnsupportedFeature("image data URIs must be base64-encoded", param="messages")
        if media_type not in _IMAGE_TYPES:
            raise UnsupportedFeature(
                f"Anthropic accepts jpeg, png, gif and webp images, not {media_type or 'untyped'}",
                param="messages",
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise UnsupportedFeature("images must be a data: URI or an http(s) URL", param="messages")
