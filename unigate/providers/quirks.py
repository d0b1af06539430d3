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
* ``stream_usage``: the host honours OpenAI's ``stream_options.include_usage`` (a final
  ``choices: []`` chunk carrying ``usage``; ``"usage": null`` on every other chunk). When a
  client streams without asking for it, the relay asks anyway (``injects_stream_usage``), keeps
  the exact usage for its records and strips what it added, so the client reads the stream it
  asked for. False where the host refuses the field (Mistral: 422 ``extra_forbidden``), ignores it
  because usage always comes (OpenRouter, Groq's ``x_groq.usage``), or does not document it
  (SiliconFlow, Azure's Foundry models endpoint and dated api-versions before 2024-09-01).

Only quirks a provider document backs are listed; each rule cites it. The table renders into
``docs/hosts/openai-compatible.md`` (``markdown_table``; a test keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from unigate.config.compile import Channel
from unigate.errors import UnsupportedFeature
from unigate.providers.azure import azure_target

__all__ = [
    "NO_QUIRKS",
    "RULES",
    "ChunkNormaliser",
    "HostRule",
    "Quirks",
    "Verdict",
    "apply_request",
    "injects_stream_usage",
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
    stream_usage: bool = True
    """The host honours ``stream_options.include_usage`` (see the module docstring)."""
    stream_usage_since: str | None = None
    """Azure: the first dated api-version that knows ``stream_options``; a channel whose
    ``base_url`` names an older one, or the Foundry models endpoint, gets ``stream_usage=False``."""
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
        # That usage always comes, so `stream_options.include_usage` is not injected: it would add
        # nothing the gateway lacks.
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
            stream_usage=False,
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
        # Mistral's chat request has `max_tokens` and `random_seed` (no `seed`), and no
        # `stream_options`: it answers 422 `extra_forbidden` for `stream_options.include_usage`
        # (avante.nvim#2347); its streams end with usage unasked (tabby#4082).
        Quirks(provider="Mistral", renames={**MAX_TOKENS_RENAME, "seed": "random_seed"}, stream_usage=False),
        docs=(
            "https://docs.mistral.ai/api/#tag/chat/operation/chat_completion_v1_chat_completions_post",
            "https://github.com/mistralai/client-python/blob/main/src/mistralai/models/chatcompletionrequest.py",
            "https://github.com/yetone/avante.nvim/issues/2347",
            "https://github.com/TabbyML/tabby/pull/4082",
        ),
        hosts=("api.mistral.ai",),
    ),
    HostRule(
        # The chat-completion reference documents `max_tokens` only, and no `stream_options`
        # (so none is injected).
        Quirks(provider="SiliconFlow", renames=MAX_TOKENS_RENAME, stream_usage=False),
        docs=("https://docs.siliconflow.cn/docs/api/chat-completions-post",),
        hosts=("api.siliconflow.cn", "api.siliconflow.com"),
    ),
    HostRule(
        # "Reasoning tokens will appear in the reasoning field of each message". Stream usage:
        # `include_usage` "has no effect. Full usage details are always included".
        Quirks(provider="OpenRouter", reasoning_field="reasoning", stream_usage=False),
        docs=(
            "https://openrouter.ai/docs/use-cases/reasoning-tokens",
            "https://openrouter.ai/docs/client-sdks/python/components/chatstreamoptions",
        ),
        hosts=("openrouter.ai",),
        engines=("openrouter",),
    ),
    HostRule(
        # Supported request fields list `max_tokens` only (and `stream_options.include_usage`);
        # thinking comes back as `reasoning`
        # (Message.Reasoning `json:"reasoning"` in ollama openai/openai.go).
        Quirks(provider="Ollama", renames=MAX_TOKENS_RENAME, reasoning_field="reasoning"),
        docs=(
            "https://docs.ollama.com/api/openai-compatibility",
            "https://github.com/ollama/ollama/blob/main/openai/openai.go",
        ),
        engines=("ollama",),
    ),
    HostRule(
        # "reasoning used to be called reasoning_content". `stream_options` (`include_usage`,
        # `continuous_usage_stats`) is part of its chat request (entrypoints/openai/protocol.py).
        Quirks(provider="vLLM", reasoning_field="reasoning"),
        docs=(
            "https://docs.vllm.ai/en/stable/features/reasoning_outputs/",
            "https://github.com/vllm-project/vllm/blob/main/vllm/entrypoints/openai/protocol.py",
        ),
        engines=("vllm",),
    ),
    HostRule(
        # The first chunk of a stream carries only prompt_filter_results, with id "" and
        # choices [] (wire-formats.md §5). `stream_options` is known from api-version
        # 2024-09-01-preview (and GA 2024-10-21, our default); older dated versions answer 400
        # "Unknown parameter: 'stream_options'" — `_azure_stream_usage` decides per base_url.
        Quirks(provider="Azure OpenAI", fold_filter_chunks=True, stream_usage_since="2024-09-01"),
        docs=(
            "https://learn.microsoft.com/en-us/azure/ai-services/openai/concepts/content-filter",
            "https://learn.microsoft.com/en-us/azure/ai-foundry/openai/reference",
            "https://learn.microsoft.com/en-us/answers/questions/2007680/why-is-the-token-usage-event-available-in-the-stre",
        ),
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
            since = rule.quirks.stream_usage_since
            if since is not None and not _azure_stream_usage(base_url, since):
                return replace(rule.quirks, stream_usage=False)
            return rule.quirks
    host = (urlsplit(base_url.strip()).hostname or "").lower() if base_url else ""
    if host:
        for rule in RULES:
            if any(host == h or host.endswith("." + h) for h in rule.hosts):
                return rule.quirks
    return NO_QUIRKS


def _azure_stream_usage(base_url: str | None, since: str) -> bool:
    """Does this Azure ``base_url`` reach an API that knows ``stream_options``? The v1 API and
    dated api-versions from ``since`` on do; the Foundry models endpoint (2024-05-01-preview by
    default) does not document it, nor do older dated versions (they answer 400)."""
    if not base_url:
        return True
    target = azure_target(base_url)
    if target.form == "models":
        return False
    version = target.params.get("api-version", "")
    dated = len(version) >= 10 and version[4] == "-" and version[:4].isdigit()
    return not dated or version[:10] >= since


# ---------------------------------------------------------------------------------- request side


def injects_stream_usage(quirks: Quirks, body: Mapping[str, Any]) -> bool:
    """Should the upstream be asked for stream usage the client did not ask for? True for a
    streamed request (``stream: true``) whose ``stream_options`` is absent, null or an object
    without a true ``include_usage``, on a host that honours it. The request side adds
    ``include_usage: true``; the stream side (relay_streams.PassThroughStream) takes the usage
    chunk and the ``"usage": null`` fields back out. A malformed ``stream_options`` is left for
    the upstream to refuse, as before."""
    if not quirks.stream_usage or body.get("stream") is not True:
        return False
    options = body.get("stream_options")
    if options is None:
        return True
    return isinstance(options, dict) and not options.get("include_usage")


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


def _asked(q: Quirks) -> str:
    if not q.stream_usage:
        return "`include_usage` not added"
    if q.stream_usage_since:
        return f"`include_usage` added (api-version ≥ {q.stream_usage_since}, not the models endpoint)"
    return "`include_usage` added"


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
        usage = "; ".join(filter(None, [f"`{'.'.join(q.usage_path)}` → `usage`" if q.usage_path else "", _asked(q)]))
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
