"""IR ``ChatRequest`` → Bedrock ``Converse`` / ``ConverseStream`` request body.

Docs: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html , wire-formats.md
§6.2; shapes and limits checked against botocore's ``bedrock-runtime`` 2023-09-30 model
(``ConverseRequest``, ``ContentBlock``, ``InferenceConfiguration``, ``ToolConfiguration``,
``OutputConfig``). The model id goes in the URL, never in the body; the body is the same for
``converse`` and ``converse-stream``.

Messages:

* ``system``/``developer`` texts → ``system: [{"text"}]`` in order (a mid-conversation system message
  moves there too: Converse has one system slot).
* ``user`` → ``user``, ``assistant`` → ``assistant``, ``tool`` → ``toolResult`` blocks in a ``user``
  turn. Consecutive same-role turns are merged (Converse rejects them); inside a user turn
  ``toolResult`` blocks go first, inside an assistant turn ``reasoningContent`` goes first. Empty texts
  and messages are left out (Converse rejects empty text blocks).
* ``ToolCall`` → ``toolUse {toolUseId, name, input}`` (``input`` is the parsed arguments, which must be
  an object; ``""`` is ``{}``). A ``ToolResult`` → ``toolResult {toolUseId, content: [{"text"}|{"image"}],
  status}`` (``status: "error"`` when the result is an error; text stays text; an empty result has
  ``content: []``, which botocore's model allows). Call ids outside
  Converse's pattern ``[a-zA-Z0-9_.:-]{1,64}`` are replaced by a stable digest (``tool_use_id``), the
  same for a call and its result, so any client id round-trips; answers carry Bedrock's own ids.
* Images: a base64 ``data:`` URI → ``image {format, source: {bytes}}`` (png, jpeg, gif, webp); an
  ``s3://`` URL → ``source.s3Location.uri`` (format from the extension); an http(s) URL → 400
  (Converse cannot fetch; channels with ``fetch_images: true`` get it inlined by the relay).
  ``detail`` has no slot and is a resolution hint: not sent. Audio → ``audio {format, source: {bytes}}``
  (the formats of botocore's ``AudioFormat``).
* Signed ``Reasoning`` → ``reasoningContent.reasoningText {text, signature}``; redacted reasoning →
  ``reasoningContent.redactedContent``; unsigned reasoning (another provider's, or echoed by a client)
  is left out: models verify signatures and do not read past turns' thinking without them.
* ``Opaque`` parts of this dialect go back verbatim; an OpenAI text/image part that carries only a
  ``cache_control`` (how OpenAI-format clients ask for prompt caching) becomes the block followed by a
  ``cachePoint`` (``ttl`` kept when it is ``5m``/``1h``); any other foreign part → 400.

Parameters:

==========================  =============================================================
``max_tokens``              ``inferenceConfig.maxTokens`` (else ``options.default_max_tokens``;
                            else not sent: the model's default applies).
``temperature``             ``inferenceConfig.temperature``; Converse takes 0–1 only, above → 400.
``top_p``, ``stop``         ``inferenceConfig.topP``, ``inferenceConfig.stopSequences``.
``tools``                   ``toolConfig.tools[].toolSpec {name, description, inputSchema.json, strict}``.
``tool_choice``             auto → ``{"auto":{}}``, required → ``{"any":{}}``, named → ``{"tool":{"name"}}``;
                            ``none`` → no ``toolConfig`` at all (Converse has no "none"), which is
                            refused (400) when the history holds tool calls or results, because
                            Converse then requires ``toolConfig``.
``parallel_tool_calls``     ``false`` with tools → 400: Converse has no switch for it.
``response_format``         json_schema → ``outputConfig.textFormat`` (the schema as JSON text);
                            json_object → 400 (no schema-less JSON mode).
``reasoning_effort``        ``outputConfig.effort`` (low, medium, high, xhigh — and Bedrock's max);
                            ``none``/``minimal`` → 400 (no such effort level).
``service_tier``            ``serviceTier.type`` (default, flex, priority); ``auto`` is the default
                            and is not sent.
``top_k``, ``seed``,        400: no model-independent Converse field (``top_k`` can be passed in the
``n`` > 1, ``logprobs``     native ``additionalModelRequestFields`` for models that take it).
``user``                    left out: no Converse field, and it does not change the answer.
==========================  =============================================================

``extra`` policy: the native Converse keys in ``NATIVE_EXTRA`` pass through (``additionalModelRequestFields``
and friends; an ``outputConfig`` given natively conflicts with response_format/reasoning_effort → 400);
OpenAI keys in ``IGNORED_EXTRA`` do not affect the answer and are dropped; ``DEFAULT_ONLY_EXTRA``
keys are accepted at their no-op value only; anything else non-null → 400 naming it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import orjson

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

DIALECT_NAME = "bedrock-converse"
_OPENAI = "openai"  # the OpenAI dialect's Opaque tag (a literal: dialects do not import each other)

NATIVE_EXTRA = frozenset(
    {
        "additionalModelRequestFields",
        "additionalModelResponseFieldPaths",
        "guardrailConfig",
        "performanceConfig",
        "requestMetadata",
        "promptVariables",
        "outputConfig",
    }
)
IGNORED_EXTRA = frozenset(
    {"store", "stream_options", "metadata", "prompt_cache_key", "prompt_cache_retention", "safety_identifier"}
)
DEFAULT_ONLY_EXTRA: Mapping[str, tuple[object, ...]] = {
    "logprobs": (False,),
    "top_logprobs": (0,),
    "logit_bias": ({},),
    "frequency_penalty": (0,),
    "presence_penalty": (0,),
    "modalities": (["text"],),
}
EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})
_SERVICE_TIERS = frozenset({"default", "flex", "priority"})
_IMAGE_FORMATS: Mapping[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_IMAGE_EXTENSIONS: Mapping[str, str] = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "gif": "gif", "webp": "webp"}
_AUDIO_FORMATS = frozenset(
    {"mp3", "opus", "wav", "aac", "flac", "mp4", "ogg", "mkv", "mka", "x-aac", "m4a", "mpeg", "mpga", "pcm", "webm"}
)
_TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
_CACHE_TTLS = frozenset({"5m", "1h"})
_CACHEABLE_PART_KEYS: Mapping[str, frozenset[str]] = {
    "text": frozenset({"type", "text", "cache_control"}),
    "image_url": frozenset({"type", "image_url", "cache_control"}),
}


def tool_use_id(call_id: str) -> str:
    """``call_id`` if Converse accepts it as a ``toolUseId``, else a stable digest of it."""
    if _TOOL_USE_ID.fullmatch(call_id):
        return call_id
    return "tooluse_" + hashlib.sha256(call_id.encode()).hexdigest()[:40]


def encode_request(request: ChatRequest, options: DialectOptions) -> dict[str, Any]:
    """The Converse body for ``request``; raises ``UnsupportedFeature``/``BadRequest`` (module docstring)."""
    extra = _check_extra(request.extra)
    for field, value in (("seed", request.seed), ("top_k", request.top_k)):
        if value is not None:
            raise UnsupportedFeature(
                f"Bedrock Converse has no model-independent '{field}'"
                + (": pass it in additionalModelRequestFields if the model takes it" if field == "top_k" else ""),
                param=field,
            )
    if request.n is not None and request.n != 1:
        raise UnsupportedFeature("Bedrock Converse returns one choice: 'n' must be 1", param="n")

    system, messages, has_tool_blocks = _conversation(request.messages)
    if not messages:
        raise BadRequest("messages must contain at least one user or assistant message", param="messages")
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    inference = _inference(request, options)
    if inference:
        body["inferenceConfig"] = inference
    tool_config = _tool_config(request, has_tool_blocks)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    output = _output_config(request, extra.pop("outputConfig", None))
    if output:
        body["outputConfig"] = output
    tier = _service_tier(extra.pop("service_tier", None))
    if tier is not None:
        body["serviceTier"] = tier
    body.update(extra)
    return body


def _check_extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the ``extra`` policy; returns the keys that go on (native ones and ``service_tier``)."""
    kept: dict[str, Any] = {}
    for key, value in extra.items():
        if value is None or key in IGNORED_EXTRA:
            continue
        if key in NATIVE_EXTRA or key == "service_tier":
            kept[key] = value
        elif key in DEFAULT_ONLY_EXTRA:
            if value not in DEFAULT_ONLY_EXTRA[key]:
                raise UnsupportedFeature(f"Bedrock Converse does not support '{key}'", param=key)
        else:
            raise UnsupportedFeature(f"'{key}' cannot be sent to Bedrock Converse", param=key)
    return kept


def _inference(request: ChatRequest, options: DialectOptions) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = request.max_tokens if request.max_tokens is not None else options.default_max_tokens
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    if request.temperature is not None:
        if not 0 <= request.temperature <= 1:
            raise UnsupportedFeature("Bedrock Converse accepts temperature from 0 to 1", param="temperature")
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.stop:
        config["stopSequences"] = list(request.stop)
    return config


def _tool_config(request: ChatRequest, has_tool_blocks: bool) -> dict[str, Any] | None:
    choice = request.tool_choice
    if request.parallel_tool_calls is False and request.tools:
        raise UnsupportedFeature(
            "parallel_tool_calls=false cannot be expressed for Bedrock Converse", param="parallel_tool_calls"
        )
    if not request.tools:
        if choice is None or choice in ("auto", "none"):
            return None
        raise BadRequest("tool_choice requires tools", param="tool_choice")
    if choice == "none":
        if has_tool_blocks:
            raise UnsupportedFeature(
                "Bedrock Converse has no tool_choice 'none', and tools cannot be left out while the "
                "conversation holds tool calls or results",
                param="tool_choice",
            )
        return None
    config: dict[str, Any] = {
        "tools": [_tool_spec(t.name, t.description, t.parameters, t.strict) for t in request.tools]
    }
    if isinstance(choice, NamedToolChoice):
        if all(t.name != choice.name for t in request.tools):
            raise BadRequest(f"tool_choice names unknown tool {choice.name!r}", param="tool_choice")
        config["toolChoice"] = {"tool": {"name": choice.name}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


def _tool_spec(
    name: str, description: str | None, parameters: Mapping[str, Any] | None, strict: bool | None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name}
    if description:
        spec["description"] = description
    spec["inputSchema"] = {"json": dict(parameters) if parameters is not None else {"type": "object", "properties": {}}}
    if strict is not None:
        spec["strict"] = strict
    return {"toolSpec": spec}


def _output_config(request: ChatRequest, native: object) -> dict[str, Any]:
    if native is not None and not isinstance(native, Mapping):
        raise BadRequest("outputConfig must be an object", param="outputConfig")
    config: dict[str, Any] = dict(native or {})
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        if fmt.type == "json_object":
            raise UnsupportedFeature(
                "Bedrock Converse has no JSON mode without a schema: use response_format json_schema",
                param="response_format",
            )
        if fmt.schema is None:
            raise BadRequest("response_format json_schema needs a schema", param="response_format")
        if "textFormat" in config:
            raise BadRequest("give either response_format or outputConfig.textFormat", param="response_format")
        schema: dict[str, Any] = {"schema": orjson.dumps(dict(fmt.schema)).decode()}
        if fmt.name:
            schema["name"] = fmt.name
        config["textFormat"] = {"type": "json_schema", "structure": {"jsonSchema": schema}}
    effort = request.reasoning_effort
    if effort is not None:
        if effort not in EFFORTS:
            raise UnsupportedFeature(
                f"reasoning_effort {effort!r} has no Bedrock Converse effort level (low, medium, high, xhigh, max)",
                param="reasoning_effort",
            )
        if "effort" in config:
            raise BadRequest("give either reasoning_effort or outputConfig.effort", param="reasoning_effort")
        config["effort"] = effort
    return config


def _service_tier(value: object) -> dict[str, str] | None:
    if value is None or value == "auto":
        return None
    if value not in _SERVICE_TIERS:
        raise UnsupportedFeature(f"service_tier {value!r} has no Bedrock equivalent", param="service_tier")
    return {"type": str(value)}


# ---------------------------------------------------------------------------------------- messages


def _conversation(messages: tuple[Message, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """The ``system`` blocks, the merged turns, and whether any turn holds toolUse/toolResult."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    tool_blocks = False
    for message in messages:
        if message.role in ("system", "developer"):
            for part in message.parts:
                system.extend(_system_blocks(part))
            continue
        role = "assistant" if message.role == "assistant" else "user"
        if message.role == "tool" and not all(isinstance(p, ToolResult) for p in message.parts):
            raise BadRequest("a tool message must hold tool results only", param="messages")
        blocks: list[dict[str, Any]] = []
        for part in message.parts:
            blocks.extend(_assistant_blocks(part) if role == "assistant" else _user_blocks(part))
        if not blocks:
            continue
        tool_blocks = tool_blocks or any("toolUse" in b or "toolResult" in b for b in blocks)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        first = "toolResult" if turn["role"] == "user" else "reasoningContent"
        turn["content"].sort(key=lambda block: first not in block)  # stable partition
    return system, turns, tool_blocks


def _system_blocks(part: Part) -> list[dict[str, Any]]:
    if isinstance(part, Text):
        return [{"text": part.text}] if part.text else []
    if isinstance(part, Opaque):
        blocks = _opaque_blocks(part, "system")
        if all("text" in b or "cachePoint" in b for b in blocks):
            return blocks
    raise UnsupportedFeature("Bedrock Converse system prompts hold text only", param="messages")


def _user_blocks(part: Part) -> list[dict[str, Any]]:
    if isinstance(part, Text):
        return [{"text": part.text}] if part.text else []
    if isinstance(part, Image):
        return [_image(part)]
    if isinstance(part, Audio):
        return [_audio(part)]
    if isinstance(part, ToolResult):
        return [_tool_result(part)]
    if isinstance(part, Opaque):
        return _opaque_blocks(part, "user")
    raise UnsupportedFeature(
        f"{type(part).__name__} cannot appear in a Bedrock Converse user message", param="messages"
    )


def _assistant_blocks(part: Part) -> list[dict[str, Any]]:
    if isinstance(part, Text):
        return [{"text": part.text}] if part.text else []
    if isinstance(part, ToolCall):
        return [{"toolUse": {"toolUseId": tool_use_id(part.id), "name": part.name, "input": arguments_object(part)}}]
    if isinstance(part, Reasoning):
        if not part.signature:
            return []
        if part.redacted:
            return [{"reasoningContent": {"redactedContent": part.signature}}]
        return [{"reasoningContent": {"reasoningText": {"text": part.text, "signature": part.signature}}}]
    if isinstance(part, Opaque):
        if part.dialect == _OPENAI and "tool_call" in part.data:
            fields = part.data.get("fields")
            if isinstance(fields, Mapping) and fields.keys() <= {"extra_content"}:
                return []  # Gemini's thought signature in OpenAI form: meaningless here
        return _opaque_blocks(part, "assistant")
    raise UnsupportedFeature(
        f"{type(part).__name__} cannot appear in a Bedrock Converse assistant message", param="messages"
    )


def _opaque_blocks(part: Opaque, role: str) -> list[dict[str, Any]]:
    """This dialect's own blocks verbatim; an OpenAI part carrying ``cache_control`` → block + cachePoint."""
    if part.dialect == DIALECT_NAME:
        return [dict(part.data)]
    data = part.data.get("part") if part.dialect == _OPENAI else None
    kind = data.get("type") if isinstance(data, Mapping) else None
    allowed = _CACHEABLE_PART_KEYS.get(kind) if isinstance(kind, str) else None
    if isinstance(data, Mapping) and allowed is not None and data.keys() <= allowed:
        image = data.get("image_url")
        block: dict[str, Any] | None = None
        if kind == "text" and isinstance(data.get("text"), str):
            block = {"text": data["text"]}
        elif isinstance(image, Mapping) and isinstance(image.get("url"), str) and image.keys() <= {"url", "detail"}:
            block = _image(Image(image["url"]))
        if block is not None:
            blocks = [block]
            control = data.get("cache_control")
            if isinstance(control, Mapping):
                point: dict[str, Any] = {"type": "default"}
                if control.get("ttl") in _CACHE_TTLS:
                    point["ttl"] = control["ttl"]
                blocks.append({"cachePoint": point})
            return blocks
    what = f"{kind!r} content part" if isinstance(kind, str) else f"{part.dialect} {'/'.join(sorted(part.data))}"
    raise UnsupportedFeature(f"{what} cannot be sent in a Bedrock Converse {role} message", param="messages")


def _tool_result(result: ToolResult) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for part in result.content:
        if isinstance(part, Text):
            if part.text:
                content.append({"text": part.text})
        elif isinstance(part, Image):
            content.append(_image(part))
        else:
            raise UnsupportedFeature("Bedrock Converse tool results hold text and images only", param="messages")
    block: dict[str, Any] = {"toolUseId": tool_use_id(result.call_id), "content": content}
    if result.is_error:
        block["status"] = "error"
    return {"toolResult": block}


def _image(image: Image) -> dict[str, Any]:
    url = image.url
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        media_type, *params = header.split(";")
        fmt = _IMAGE_FORMATS.get(media_type.strip().lower())
        if not comma or "base64" not in params or not data:
            raise UnsupportedFeature("image data URIs must be base64-encoded", param="messages")
        if fmt is None:
            raise UnsupportedFeature(
                f"Bedrock Converse accepts png, jpeg, gif and webp images, not {media_type or 'untyped'}",
                param="messages",
            )
        return {"image": {"format": fmt, "source": {"bytes": data}}}
    if url.startswith("s3://"):
        fmt = _IMAGE_EXTENSIONS.get(url.rsplit(".", 1)[-1].lower()) if "." in url.rsplit("/", 1)[-1] else None
        if fmt is None:
            raise UnsupportedFeature("s3:// image URLs must end in .png, .jpg, .jpeg, .gif or .webp", param="messages")
        return {"image": {"format": fmt, "source": {"s3Location": {"uri": url}}}}
    raise UnsupportedFeature(
        "Bedrock Converse takes images inline (data: URI) or from s3://; it cannot fetch http(s) URLs "
        "(set fetch_images: true on the channel to have them inlined)",
        param="messages",
    )


def _audio(audio: Audio) -> dict[str, Any]:
    fmt = audio.format.lower()
    if fmt not in _AUDIO_FORMATS:
        raise UnsupportedFeature(
            f"audio format {audio.format!r} is not supported by Bedrock Converse", param="messages"
        )
    return {"audio": {"format": fmt, "source": {"bytes": audio.data}}}
