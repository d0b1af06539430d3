"""Compile a validated ``ApiYaml`` into the frozen ``Runtime`` the request path reads.

Everything that can be decided once is decided here, never per request: each channel's engine
(from ``engine:`` or an explicit rule on ``base_url``), its endpoint URLs, its alias table
(alias → upstream name), timeouts, headers and body overrides; each client key's compiled
permission rules. The request path then does dictionary lookups only.

Discovery of models from an upstream's ``/models`` is I/O and happens before compiling; its
result arrives here as ``discovered`` (provider name → upstream model names).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from unigate.config.schema import ApiKeyConfig, ApiYaml, ProviderConfig

DEFAULT_TIMEOUT = 100.0
DEFAULT_COOLDOWN = 300.0
OPENAI_DEFAULT_BASE = "https://api.openai.com/v1"

# Engines unigate implements. A channel whose engine is not here yet is skipped with a
# start-up warning (``Runtime.warnings``) rather than failing on its first request.
IMPLEMENTED_ENGINES = frozenset({"openai", "anthropic", "gemini", "vertex", "azure", "cloudflare", "cohere", "bedrock"})

# ``engine:`` values uni-api documents → our engine names.
_ENGINE_ALIASES = {
    "gpt": "openai",
    "openai": "openai",
    "openrouter": "openai",
    "ollama": "openai",  # unigate extension: local OpenAI-compatible servers whose quirks
    "vllm": "openai",  # providers/quirks.py applies (keyed on Channel.engine_name)
    "claude": "anthropic",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "vertex": "vertex",
    "vertex-gemini": "vertex",
    "vertex-claude": "vertex",
    "azure": "azure",
    "aws": "bedrock",
    "bedrock": "bedrock",
    "cohere": "cohere",
    "cloudflare": "cloudflare",
    "codex": "codex",
}


def engine_for(provider: ProviderConfig) -> str:
    """Decide a channel's engine once: ``engine:`` wins; otherwise a rule on ``base_url``.

    The rules look at the host and path only — never at model names (uni-api's seed guessed
    the converter from model-name substrings at request time; see uni-api-compat.md §4.1).
    """
    if provider.engine:
        return _ENGINE_ALIASES.get(provider.engine.lower(), provider.engine.lower())
    if provider.project_id:
        return "vertex"
    if provider.cf_account_id:
        return "cloudflare"
    if provider.aws_access_key:
        return "bedrock"
    url = urlsplit(provider.base_url or OPENAI_DEFAULT_BASE)
    host = (url.hostname or "").lower()
    path = url.path.rstrip("/")
    if host == "api.anthropic.com" or path.endswith("/v1/messages"):
        return "anthropic"
    if host == "generativelanguage.googleapis.com" and "/openai" not in path:
        return "gemini"
    if host.endswith("aiplatform.googleapis.com"):
        return "vertex"
    if host.endswith(".openai.azure.com") or host.endswith(".services.ai.azure.com"):
        return "azure"
    if host.endswith(".amazonaws.com"):
        return "bedrock"
    if host == "api.cohere.com" or host == "api.cohere.ai":
        return "cohere"
    if host == "api.cloudflare.com":
        return "cloudflare"
    return "openai"


def openai_root(base_url: str | None) -> str:
    """The API root of an OpenAI-compatible ``base_url``: both the full endpoint
    (``…/v1/chat/completions``) and the root (``…/v1``) are accepted."""
    url = (base_url or OPENAI_DEFAULT_BASE).rstrip("/")
    for suffix in ("/chat/completions", "/completions", "/responses", "/embeddings", "/models"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible label for a key (logs and statistics never see keys)."""
    return "key-" + hashlib.sha256(secret.encode()).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A Google service account (Vertex AI OAuth): ``client_email`` and its PEM ``private_key``.

    Hashable, so a provider can cache one access token per account; the key never appears in
    ``repr`` (channels get logged)."""

    client_email: str
    private_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """AWS Bedrock's SigV4 credentials (``aws_access_key``, ``aws_secret_key``, optional
    ``aws_session_token``). The secret parts never appear in ``repr``."""

    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Channel:
    """One ``providers[]`` entry, compiled. ``models`` maps alias → upstream name.

    ``base_url`` is the OpenAI-style API root (``openai_root``); hosts with other URL shapes
    read ``raw_base_url``, the configured ``base_url`` verbatim (``None`` when not set).
    ``project_id``, ``region`` and ``service_account`` are the Vertex AI keys (§2.2);
    ``cf_account_id`` is Cloudflare's account and ``aws`` Bedrock's SigV4 credentials."""

    name: str
    index: int
    engine: str
    base_url: str
    keys: tuple[str, ...]
    models: Mapping[str, str]
    tools: bool = True
    image: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)
    overrides_all: Mapping[str, Any] = field(default_factory=dict)
    overrides_by_model: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    remove_keys: tuple[str, ...] = ()
    proxy: str | None = None
    model_timeout: Mapping[str, float] = field(default_factory=dict)
    keepalive_interval: Mapping[str, float] = field(default_factory=dict)
    cooldown_period: float | None = None
    key_schedule: str = "round_robin"
    key_cooldown_period: float = 0.0
    key_rate_limits: Mapping[str, str] = field(default_factory=dict)
    fetch_images: bool = False
    fetch_images_allow_private: bool = False
    raw_base_url: str | None = None
    project_id: str | None = None
    region: str = "global"
    service_account: ServiceAccount | None = None
    cf_account_id: str | None = None
    aws: AwsCredentials | None = None
    engine_name: str = ""
    """The configured ``engine:`` lowercased, "" when unset (``engine`` is what it maps to):
    providers/quirks.py keys host quirks on it (``openrouter``, ``ollama``, ``vllm``)."""

    @property
    def chat_url(self) -> str:
        return self.base_url + "/chat/completions"

    @property
    def models_url(self) -> str:
        return self.base_url + "/models"


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of a client key's ``model`` list.

    ``kind`` is ``all``, ``name`` (a model alias, any provider), ``provider`` (``prov/*``),
    ``provider_model`` (``prov/model``) or ``literal`` (``<a/b>``: the text is an alias)."""

    kind: str
    provider: str | None = None
    model: str | None = None
    weight: int | None = None


@dataclass(frozen=True, slots=True)
class ClientKey:
    """A compiled ``api_keys[]`` entry. ``id`` is a fingerprint of the key (state and
    statistics are keyed by it); ``label`` (its role, else the id) is what logs show."""

    key: str
    id: str
    label: str
    is_admin: bool
    rules: tuple[Rule, ...]
    scheduling: str = "fixed_priority"
    auto_retry: bool = True
    retry_count: int | None = None
    moderation: bool = False
    rate_limits: Mapping[str, str] = field(default_factory=dict)
    preferences: Mapping[str, Any] = field(default_factory=dict)
    credits: float | None = None
    credits_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything the request path needs, immutable; a reload builds a new one and swaps it."""

    channels: tuple[Channel, ...]
    keys: tuple[ClientKey, ...]
    model_timeout: Mapping[str, float]
    keepalive_interval: Mapping[str, float]
    cooldown_period: float
    error_triggers: tuple[str, ...]
    default_timeout: float
    rate_limits: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    channels_by_name: Mapping[str, Channel] = field(default_factory=dict)
    # alias → channels offering it, in providers order
    channels_by_alias: Mapping[str, tuple[Channel, ...]] = field(default_factory=dict)
    # The moderation gate (keys with ENABLE_MODERATION): the model it asks, and whether a
    # failed check lets the request through (docs/endpoints.md).
    moderation_model: str = "omni-moderation-latest"
    moderation_fail_open: bool = True


def _timeouts(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, int | float):
        return {"default": float(value)}
    return {str(k): float(v) for k, v in dict(value).items()}


def _alias_table(provider: ProviderConfig, discovered: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    table: dict[str, str] = {}
    if provider.model is None:
        for name in discovered.get(provider.provider, ()):
            table[name] = name
        return table
    for entry in provider.model:
        if isinstance(entry, str):
            table[entry] = entry
        else:
            for upstream, alias in entry.items():
                table[str(alias)] = str(upstream)
    return table


def _overrides(
    raw: Mapping[str, Any] | None, names: set[str]
) -> tuple[dict[str, Any], dict[str, Mapping[str, Any]], tuple[str, ...]]:
    """Split ``post_body_parameter_overrides`` into global keys, per-model keys and removals.

    A key naming one of the channel's models (alias or upstream name) with a mapping value
    applies to that model only; ``__remove__`` (a key or list of keys) deletes top-level body
    keys; every other key is merged into every request's body.
    """
    everywhere: dict[str, Any] = {}
    by_model: dict[str, Mapping[str, Any]] = {}
    remove: tuple[str, ...] = ()
    for key, value in (raw or {}).items():
        if key == "__remove__":
            remove = (value,) if isinstance(value, str) else tuple(str(v) for v in value)
        elif key in names and isinstance(value, Mapping):
            by_model[key] = dict(value)
        else:
            everywhere[key] = value
    return everywhere, by_model, remove


def compile_channel(
    provider: ProviderConfig,
    index: int,
    discovered: Mapping[str, tuple[str, ...]],
    default_proxy: str | None = None,
) -> Channel:
    """Compile one ``providers[]`` entry; ``default_proxy`` is the global ``preferences.proxy``."""
    prefs = provider.preferences
    api = provider.api
    keys: tuple[str, ...] = () if api is None else (api,) if isinstance(api, str) else tuple(api)
    models = _alias_table(provider, discovered)
    names = set(models) | set(models.values())
    everywhere, by_model, remove = _overrides(prefs.post_body_parameter_overrides, names)
    keepalive = prefs.keepalive_interval
    return Channel(
        name=provider.provider,
        index=index,
        engine=engine_for(provider),
        engine_name=(provider.engine or "").lower(),
        base_url=openai_root(provider.base_url),
        keys=keys,
        models=models,
        tools=provider.tools,
        image=provider.image,
        headers=dict(prefs.headers or {}),
        overrides_all=everywhere,
        overrides_by_model=by_model,
        remove_keys=remove,
        proxy=prefs.proxy or default_proxy,
        model_timeout=_timeouts(prefs.model_timeout),
        keepalive_interval=_timeouts(keepalive),
        cooldown_period=prefs.cooldown_period,
        key_schedule=prefs.api_key_schedule_algorithm,
        key_cooldown_period=float(prefs.api_key_cooldown_period or 0),
        key_rate_limits=dict(prefs.api_key_rate_limit or {}),
        fetch_images=prefs.fetch_images,
        fetch_images_allow_private=prefs.fetch_images_allow_private,
        raw_base_url=provider.base_url,
        project_id=provider.project_id,
        region=provider.region,
        service_account=(
            ServiceAccount(provider.client_email, provider.private_key)
            if provider.client_email and provider.private_key
            else None
        ),
        cf_account_id=provider.cf_account_id,
        aws=(
            AwsCredentials(provider.aws_access_key, provider.aws_secret_key, provider.aws_session_token)
            if provider.aws_access_key and provider.aws_secret_key
            else None
        ),
    )


def compile_rules(entries: list[str | dict[str, int]], provider_names: set[str]) -> tuple[Rule, ...]:
    """Compile a key's ``model`` list with uni-api's matching semantics (uni-api-compat.md §2.6).

    ``prov/rest`` is a provider rule only when ``prov`` names a configured provider; otherwise
    the whole text is a model name (so an alias like ``meta-llama/llama-3`` needs no brackets).
    """
    rules: list[Rule] = []
    for entry in entries:
        items: list[tuple[str, int | None]] = (
            [(entry, None)] if isinstance(entry, str) else [(str(k), int(v)) for k, v in entry.items()]
        )
        for text, weight in items:
            rules.append(_rule(text, weight, provider_names))
    return tuple(rules)


def _rule(text: str, weight: int | None, provider_names: set[str]) -> Rule:
    if text == "all":
        return Rule("all", weight=weight)
    if len(text) > 2 and text.startswith("<") and text.endswith(">"):
        return Rule("literal", model=text[1:-1], weight=weight)
    prov, sep, rest = text.partition("/")
    if sep and prov in provider_names:
        if rest == "*":
            return Rule("provider", provider=prov, weight=weight)
        return Rule("provider_model", provider=prov, model=rest, weight=weight)
    return Rule("name", model=text, weight=weight)


DEFAULT_CREDITS_WINDOW = timedelta(days=30)
"""A key with ``credits`` and no ``created_at`` counts spend from this long before start-up (uni-api's default)."""


def compile_key(
    entry: ApiKeyConfig, index: int, admin_index: int, provider_names: set[str], now: datetime | None = None
) -> ClientKey:
    prefs = entry.preferences
    auto = prefs.AUTO_RETRY
    retry_count = None if isinstance(auto, bool) else int(auto)
    key_id = fingerprint(entry.api)
    credits = None if prefs.credits < 0 else float(prefs.credits)
    since = None
    if credits is not None:
        since = prefs.created_at or (now or datetime.now(UTC)) - DEFAULT_CREDITS_WINDOW
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
    return ClientKey(
        key=entry.api,
        id=key_id,
        label=entry.role or key_id,
        is_admin=index == admin_index,
        rules=compile_rules(list(entry.model), provider_names),
        scheduling=prefs.SCHEDULING_ALGORITHM,
        auto_retry=bool(auto),
        retry_count=retry_count,
        moderation=prefs.ENABLE_MODERATION,
        rate_limits={**dict(prefs.RATE_LIMIT or {}), **dict(prefs.rate_limit or {})},
        preferences=prefs.model_dump(),
        credits=credits,
        credits_since=since,
    )


def _unique_labels(keys: tuple[ClientKey, ...]) -> tuple[ClientKey, ...]:
    """Keys sharing a ``role`` get ``role/<fingerprint>`` labels: statistics and credits are
    kept per label, and two keys must never share a budget or a line of ``/v1/stats`` by accident."""
    seen: dict[str, int] = {}
    for key in keys:
        seen[key.label] = seen.get(key.label, 0) + 1
    return tuple(replace(k, label=f"{k.label}/{k.id}") if seen[k.label] > 1 else k for k in keys)


def _admin_index(keys: list[ApiKeyConfig]) -> int:
    """Keys whose role contains ``admin`` are admins; when none is marked, the first key is."""
    for i, key in enumerate(keys):
        if key.role and "admin" in key.role.lower():
            return i
    return 0


def compile_runtime(
    cfg: ApiYaml,
    discovered: Mapping[str, tuple[str, ...]] | None = None,
    env: Mapping[str, str] | None = None,
) -> Runtime:
    """Build the immutable Runtime. Pure apart from reading ``TIMEOUT`` from ``env``."""
    env = os.environ if env is None else env
    discovered = discovered or {}
    warnings: list[str] = []
    channels: list[Channel] = []
    for i, provider in enumerate(cfg.providers):
        channel = compile_channel(provider, i, discovered, cfg.preferences.proxy)
        if channel.engine not in IMPLEMENTED_ENGINES:
            warnings.append(
                f"providers[{i}] ({channel.name}): engine '{channel.engine}' is not supported yet; "
                "the channel is skipped"
            )
            continue
        channels.append(channel)
    names = {p.provider for p in cfg.providers}
    admin = _admin_index(cfg.api_keys)
    keys = _unique_labels(tuple(compile_key(k, i, admin, names) for i, k in enumerate(cfg.api_keys)))
    prefs = cfg.preferences
    by_alias: dict[str, list[Channel]] = {}
    for channel in channels:
        for alias in channel.models:
            by_alias.setdefault(alias, []).append(channel)
    try:
        default_timeout = float(env.get("TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        default_timeout = DEFAULT_TIMEOUT
    return Runtime(
        channels=tuple(channels),
        keys=keys,
        model_timeout=_timeouts(prefs.model_timeout),
        keepalive_interval=_timeouts(prefs.keepalive_interval),
        cooldown_period=DEFAULT_COOLDOWN if prefs.cooldown_period is None else float(prefs.cooldown_period),
        error_triggers=tuple(prefs.error_triggers or ()),
        default_timeout=default_timeout,
        rate_limits=dict(prefs.rate_limit or {}),
        warnings=tuple(warnings),
        channels_by_name={c.name: c for c in channels},
        channels_by_alias={a: tuple(cs) for a, cs in by_alias.items()},
        moderation_model=prefs.moderation_model,
        moderation_fail_open=prefs.moderation_fail_open,
    )
