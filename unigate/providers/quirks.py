"""What OpenAI-compatible hosts do differently, as data (STYLE.md habit 7), applied on the fast path.

A channel's ``Quirks`` are decided once per (configured engine, engine, base_url) and cached:
``quirks_for(channel)`` is a dictionary lookup, and a channel without quirks gets ``NO_QUIRKS``,
whose ``request`` and ``response`` flags are false — the pass-through then costs one attribute
check more than before. Rules match on the configured ``engine:`` first (an explicit choice:
``engine: openrouter`` behind a proxy still gets OpenRouter's quirks), then on the base URL's
host (``api.groq.com``, or any subdomain of a listed host).

Request side (``apply_request``, on the client's body after the channel's overrides):

* ``unsupported``: a parameter the provider documents as refused. The client gets our 400
  naming the parameter and the provider — never a silent drop.
* ``unsupported_message_keys``: the same for a key inside ``messages[]``.
* ``max_n``: the largest ``n`` the provider accepts.
* ``renames``: the provider's name for an OpenAI parameter it knows under another name
  (``max_completion_tokens`` → ``max_tokens`` where only ``max_tokens`` is documented).
  Both names with different values is ambiguous: a 400.

Response side (``normalise_completion`` for JSON, ``ChunkNormaliser`` for streams):

* ``reasoning_field``: the provider's name for reasoning text, renamed to ``reasoning_content``
  (the name the gateway speaks, DeepSeek's) unless that key already carries text.
* ``usage_path``: where the provider puts usage when not at the top level (Groq's
  ``x_groq.usage``); lifted to ``usage`` when that is absent or null.
* ``fold_filter_chunks``: Azure's first stream chunk carries only ``prompt_filter_results``
  (``choices: []``, ``id: ""``); its results are folded into the next chunk instead of being
  sent as a chunk with an empty id (wire-formats.md §5).

Only quirks a provider document backs are listed; each rule cites it. The table renders into
``docs/hosts/openai-compatible.md`` (``markdown_table``; a test keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from unigate.config.compile import Channel
from unigate.errors import UnsupportedFeature

__all__ = [
    "NO_QUIRKS",
    "RULES",
    "ChunkNormaliser",
    "HostRule",
    "Quirks",
    "Verdict",
    "apply_request",
    "markdown_table",
    "normalise_completion",
    "quirks_for",
]

REASONING_CONTENT = "reasoning_content"
MAX_TOKENS_RENAME: Mapping[str, str] = {"max_completion_tokens": "max_tokens"}


@dataclass(frozen=True, slots=True)
class Quirks:
    """One host's departures from OpenAI's Chat Completions (see the module docstring)."""

    provider: str = ""
    unsupported: Mapping[str, str] = field(default_factory=dict)
    unsupported_message_keys: Mapping[str, str] = field(default_factory=dict)
    max_n: int | None = None
    renames: Mapping[str, str] = field(default_factory=dict)
    reasoning_field: str | None = None
    usage_path: tuple[str, ...] = ()
    fold_filter_chunks: bool = False
    request: bool = field(init=False, default=False)
    """Any request-side quirk: ``apply_request`` has work to do."""
    response: bool = field(init=False, default=False)
    """Any response-side quirk: answers and chunks go through the normalisers."""

    def __post_init__(self) -> None:
        request = bool(self.unsupported or self.unsupported_message_keys or self.renames) or self.max_n is not None
        response = bool(self.reasoning_field or self.usage_path or self.fold_filter_chunks)
        object.__setattr__(self, "request", request)
        object.__setattr__(self, "response", response)


NO_QUIRKS = Quirks()


@dataclass(frozen=True, slots=True)
class HostRule:
    """Which channels get ``quirks``: a configured ``engine:`` (or mapped engine) in ``engines``,
    or a base-URL host equal to, or a subdomain of, one of ``hosts``. ``docs`` back every field."""

    quirks: Quirks
    docs: tuple[str, ...]
    hosts: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()


RULES: tuple[HostRule, ...] = (
    HostRule(
        # "The following fields are currently not supported and will result in a 400 error ... if
        # they are supplied: logprobs, logit_bias, top_logprobs, messages[].name; if N is supplied,
        # it must be equal to 1" (console.groq.com/docs/openai). Reasoning comes as `reasoning`
        # (reasoning_format=parsed) and a stream's usage as `x_groq.usage` "only sent in the final
        # chunk" (groq-python src/groq/types/chat/chat_completion_message.py, chat_completion_chunk.py).
        Quirks(
            provider="Groq",
            unsupported={
                "logprobs": "Groq does not return log probabilities",
                "top_logprobs": "Groq does not return log probabilities",
                "logit_bias": "Groq does not support logit_bias",
            },
            unsupported_message_keys={"name": "Groq refuses messages[].name"},
            max_n=1,
            reasoning_field="reasoning",
            usage_path=("x_groq", "usage"),
        ),
        docs=(
            "https://console.groq.com/docs/openai",
            "https://console.groq.com/docs/reasoning",
            "https://github.com/groq/groq-python/blob/main/src/groq/types/chat/chat_completion_chunk.py",
        ),
        hosts=("api.groq.com",),
    ),
    HostRule(
        # The chat-completion reference documents `max_tokens` only.
        Quirks(provider="DeepSeek", renames=MAX_TOKENS_RENAME),
        docs=("https://api-docs.deepseek.com/api/create-chat-completion",),
        hosts=("api.deepseek.com",),
    ),
    HostRule(
        # Mistral's chat request has `max_tokens` and `random_seed` (no `seed`).
        Quirks(provider="Mistral", renames={**MAX_TOKENS_RENAME, "seed": "random_seed"}),
        docs=(
            "https://docs.mistral.ai/api/#tag/chat/operation/chat_completion_v1_chat_completions_post",
            "https://github.com/mistralai/client-python/blob/main/src/mistralai/models/chatcompletionrequest.py",
        ),
        hosts=("api.mistral.ai",),
    ),
    HostRule(
        # The chat-completion reference documents `max_tokens` only.
        Quirks(provider="SiliconFlow", renames=MAX_TOKENS_RENAME),
        docs=("https://docs.siliconflow.cn/docs/api/chat-completions-post",),
        hosts=("api.siliconflow.cn", "api.siliconflow.com"),
    ),
    HostRule(
        # "Reasoning tokens will appear in the reasoning field of each message".
        Quirks(provider="OpenRouter", reasoning_field="reasoning"),
        docs=("https://openrouter.ai/docs/use-cases/reasoning-tokens",),
        hosts=("openrouter.ai",),
        engines=("openrouter",),
    ),
    HostRule(
        # Supported request fields list `max_tokens` only; thinking comes back as `reasoning`
        # (Message.Reasoning `json:"reasoning"` in ollama openai/openai.go).
        Quirks(provider="Ollama", renames=MAX_TOKENS_RENAME, reasoning_field="reasoning"),
        docs=(
            "https://docs.ollama.com/api/openai-compatibility",
            "https://github.com/ollama/ollama/blob/main/openai/openai.go",
        ),
        engines=("ollama",),
    ),
    HostRule(
        # "reasoning used to be called reasoning_content".
        Quirks(provider="vLLM", reasoning_field="reasoning"),
        docs=("https://docs.vllm.ai/en/stable/features/reasoning_outputs/",),
        engines=("vllm",),
    ),
    HostRule(
        # The first chunk of a stream carries only prompt_filter_results, with id "" and
        # choices [] (wire-formats.md §5).
        Quirks(provider="Azure OpenAI", fold_filter_chunks=True),
        docs=("https://learn.microsoft.com/en-us/azure/ai-services/openai/concepts/content-filter",),
        engines=("azure",),
    ),
)


def quirks_for(channel: Channel) -> Quirks:
    """The channel's quirks (``NO_QUIRKS`` when none); cached, so one dictionary lookup."""
    return _lookup(channel.engine_name, channel.engine, channel.raw_base_url)


@lru_cache(maxsize=1024)
def _lookup(engine_name: str, engine: str, base_url: str | None) -> Quirks:
    for rule in RULES:
        if engine_name in rule.engines or engine in rule.engines:
            return rule.quirks
    host = (urlsplit(base_url.strip()).hostname or "").lower() if base_url else ""
    if host:
        for rule in RULES:
            if any(host == h or host.endswith("." + h) for h in rule.hosts):
                return rule.quirks
    return NO_QUIRKS


# ---------------------------------------------------------------------------------- request side


def apply_request(quirks: Quirks, body: dict[str, Any]) -> None:
    """Refuse what ``quirks`` says the provider refuses; rename what it knows by another name.
    ``body`` is the gateway's own copy of the client's body (mutated in place)."""
    who = quirks.provider
    for key, reason in quirks.unsupported.items():
        if body.get(key) is not None:
            raise UnsupportedFeature(f"'{key}' is not supported by {who}: {reason}.", param=key)
    n = body.get("n")
    if quirks.max_n is not None and n is not None and n != quirks.max_n:
        raise UnsupportedFeature(f"{who} accepts 'n' = {quirks.max_n} only, got {n!r}.", param="n")
    if quirks.unsupported_message_keys:
        _check_messages(quirks, body.get("messages"))
    for ours, theirs in quirks.renames.items():
        if ours not in body:
            continue
        value = body.pop(ours)
        existing = body.get(theirs)
        if value is not None and existing is not None and existing != value:
            raise UnsupportedFeature(
                f"'{ours}' and '{theirs}' disagree; {who} knows only '{theirs}', send one of them.", param=ours
            )
        if value is not None:
            body[theirs] = value


def _check_messages(quirks: Quirks, messages: Any) -> None:
    for index, message in enumerate(messages if isinstance(messages, list) else ()):
        if not isinstance(message, dict):
            continue
        for key, reason in quirks.unsupported_message_keys.items():
            if message.get(key) is not None:
                raise UnsupportedFeature(
                    f"messages[{index}].{key} is not supported by {quirks.provider}: {reason}.", param="messages"
                )


# ---------------------------------------------------------------------------------- response side


class Verdict(Enum):
    """What ``ChunkNormaliser.apply`` did to a chunk."""

    KEEP = "keep"
    """Unchanged: forward the upstream's bytes."""
    CHANGED = "changed"
    """Changed in place: re-encode it."""
    HOLD = "hold"
    """Folded into a later chunk: forward nothing now."""


def normalise_completion(quirks: Quirks, data: dict[str, Any]) -> None:
    """Apply the response-side quirks to a non-streamed ``chat.completion`` (in place)."""
    field_name = quirks.reasoning_field
    if field_name:
        for choice in data.get("choices") or ():
            if isinstance(choice, dict):
                _rename_reasoning(choice.get("message"), field_name)
    if quirks.usage_path:
        _lift_usage(data, quirks.usage_path)


class ChunkNormaliser:
    """The response-side quirks of one stream. State: ``held``, the ``prompt_filter_results`` of
    a filter-only chunk waiting for the next chunk (``fold_filter_chunks``)."""

    __slots__ = ("held", "quirks")

    def __init__(self, quirks: Quirks) -> None:
        self.quirks = quirks
        self.held: Any = None

    def apply(self, chunk: dict[str, Any]) -> Verdict:
        quirks = self.quirks
        changed = False
        choices = chunk.get("choices")
        if quirks.fold_filter_chunks:
            if not choices and not chunk.get("usage") and "prompt_filter_results" in chunk:
                self.held = chunk["prompt_filter_results"]
                return Verdict.HOLD
            if self.held is not None:
                chunk.setdefault("prompt_filter_results", self.held)
                self.held = None
                changed = True
        field_name = quirks.reasoning_field
        if field_name and choices:
            for choice in choices:
                if isinstance(choice, dict) and _rename_reasoning(choice.get("delta"), field_name):
                    changed = True
        if quirks.usage_path and _lift_usage(chunk, quirks.usage_path):
            changed = True
        return Verdict.CHANGED if changed else Verdict.KEEP


def _rename_reasoning(message: Any, field_name: str) -> bool:
    """``message[field_name]`` → ``message["reasoning_content"]`` unless the latter has text."""
    if not isinstance(message, dict) or field_name not in message:
        return False
    if message.get(REASONING_CONTENT) is not None:
        return False
    message[REASONING_CONTENT] = message.pop(field_name)
    return True


def _lift_usage(obj: dict[str, Any], path: tuple[str, ...]) -> bool:
    if obj.get("usage") is not None:
        return False
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict) or not node:
        return False
    obj["usage"] = node
    return True


# ---------------------------------------------------------------------------------- documentation


def markdown_table(rules: tuple[HostRule, ...] = RULES) -> str:
    """The quirk table as Markdown, for docs/hosts/openai-compatible.md."""
    lines = [
        "| Provider | Matched by | Refused (clear 400) | Renamed | Reasoning field | Stream usage | Other | Source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rule in rules:
        q = rule.quirks
        matched = [f"host `{h}`" for h in rule.hosts] + [f"`engine: {e}`" for e in rule.engines]
        refused = [f"`{k}`" for k in q.unsupported] + [f"`messages[].{k}`" for k in q.unsupported_message_keys]
        if q.max_n is not None:
            refused.append(f"`n` ≠ {q.max_n}")
        renamed = [f"`{a}` → `{b}`" for a, b in q.renames.items()]
        reasoning = f"`{q.reasoning_field}` → `reasoning_content`" if q.reasoning_field else ""
        usage = f"`{'.'.join(q.usage_path)}` → `usage`" if q.usage_path else ""
        other = "first filter-only chunk folded into the next" if q.fold_filter_chunks else ""
        sources = " ".join(f"[{i + 1}]({url})" for i, url in enumerate(rule.docs))
        cells = [
            q.provider,
            ", ".join(matched),
            ", ".join(refused),
            ", ".join(renamed),
            reasoning,
            usage,
            other,
            sources,
        ]
        lines.append("| " + " | ".join(cell or "–" for cell in cells) + " |")
    return "\n".join(lines) + "\n"
