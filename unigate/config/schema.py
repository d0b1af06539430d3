"""Pydantic v2 models of uni-api's whole ``api.yaml`` (see ``uni-api-compat.md`` §2).

Contract:

* Field names are exactly the YAML keys; every model forbids unknown keys (``extra="forbid"``),
  so a typo is a validation error, never a silently ignored key.
* Every key uni-api documents is accepted. Keys unigate does not implement yet are listed by
  :func:`unsupported_keys` (dotted paths) so the server can warn at start-up; the set of such keys
  (and of such values, like ``smart_round_robin``) lives in :data:`UNSUPPORTED`.
* Values are checked strictly (``tools: maybe`` or ``cooldown_period: "300"`` are errors), except
  that an integer is accepted wherever a string is (uni-api coerces ``provider: 123``, ``api: 123``).
* "X or a map of X" keys are normalised to the map form: a bare ``model_timeout: 30`` becomes
  ``{"default": 30.0}``, a bare ``rate_limit: 15/min`` becomes ``{"default": "15/min"}`` (uni-api's
  lookup is exact → substring → ``default``, so both forms mean the same).
* :class:`~unigate.config.values.EnvText` marks a value that was a whole ``${VAR}`` reference in
  the YAML (see ``load.py``): string fields keep its text; number, boolean and free-form fields read
  it with YAML 1.2 core rules. The value types themselves live in ``values.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Final, Literal, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict

from unigate.config.values import (
    AutoRetry,
    ByteSize,
    Flag,
    FreeMap,
    KeyModelRule,
    ModelPrice,
    Name,
    NonNegative,
    OptionalProxy,
    ProviderModel,
    RateLimits,
    SecondsMap,
    StrOrList,
    Text,
    Timestamp,
    _env,
)

# ---------------------------------------------------------------------------- models


class _Strict(BaseModel):
    """Base: unknown keys are errors; configs are immutable once loaded; a ValidationError's
    str never shows input values (they may be secrets)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class RequestMatch(_Strict):
    """``exclude_request_rules[].match`` (§2.2): each field a value, a list, ``*`` or ``prefix*``."""

    endpoint: StrOrList | None = None
    request_model: StrOrList | None = None
    upstream_model: StrOrList | None = None
    reasoning_effort: StrOrList | None = None
    request_type: StrOrList | None = None


class ExcludeRequestRule(_Strict):
    """``exclude_request_rules[]`` (§2.2): skip the provider when every listed field matches."""

    match: RequestMatch
    reason: Text | None = None


class ProviderPreferences(_Strict):
    """``providers[].preferences`` (uni-api-compat.md §2.3)."""

    api_key_rate_limit: RateLimits = Field(default_factory=dict)
    api_key_schedule_algorithm: Literal["round_robin", "random", "fixed_priority", "smart_round_robin"] = "round_robin"
    api_key_cooldown_period: NonNegative = 0.0
    api_key_rate_limit_cooldown_period: NonNegative = 1800.0
    api_key_quota_cooldown_period: NonNegative = 21600.0
    model_timeout: SecondsMap = Field(default_factory=dict)
    keepalive_interval: SecondsMap = Field(default_factory=dict)
    proxy: OptionalProxy = None
    headers: dict[Text, Text] = Field(default_factory=dict)
    post_body_parameter_overrides: FreeMap = Field(default_factory=dict)
    cooldown_period: NonNegative | None = None
    max_request_body_bytes: ByteSize | None = None
    passthrough_request_headers: list[Name] = Field(default_factory=list)
    responses_stream_commit_policy: Literal["real_output", "completed_usage"] = "real_output"
    timeout_policy: FreeMap | None = None
    search_defaults: FreeMap = Field(default_factory=dict)
    access_key: Text | None = None
    secret_key: Text | None = None
    exclude_endpoints: list[Name] | None = None
    exclude_request_rules: list[ExcludeRequestRule] | None = None
    only_request_types: list[Name] | None = None
    exclude_request_types: list[Name] | None = None
    # unigate extensions (not in uni-api): fetch http(s) image URLs and inline them as base64
    # for this channel; private/loopback targets only when explicitly allowed (SSRF).
    fetch_images: Flag = False
    fetch_images_allow_private: Flag = False


class ProviderConfig(_Strict):
    """``providers[]`` (uni-api-compat.md §2.2). ``model: None`` means "discover from upstream"."""

    provider: Name
    base_url: Text | None = None
    api: StrOrList | None = None
    model: list[ProviderModel] | None = None
    tools: Flag = True
    image: Flag = True
    engine: Text | None = None
    notes: Text | None = None
    project_id: Text | None = None
    private_key: Text | None = None
    client_email: Text | None = None
    region: Text = "global"
    cf_account_id: Text | None = None
    aws_access_key: Text | None = None
    aws_secret_key: Text | None = None
    aws_session_token: Text | None = None
    exclude_endpoints: list[Name] | None = None
    only_request_types: list[Name] | None = None
    exclude_request_types: list[Name] | None = None
    exclude_request_rules: list[ExcludeRequestRule] | None = None
    preferences: ProviderPreferences = Field(default_factory=ProviderPreferences)


def _credits(value: float) -> float:
    if value != -1 and value < 0:
        raise ValueError("credits must be -1 (unlimited) or a non-negative USD amount")
    return value


class ApiKeyPreferences(_Strict):
    """``api_keys[].preferences`` (uni-api-compat.md §2.4; scheduling §5, rate limits §7, moderation §8)."""

    SCHEDULING_ALGORITHM: Literal[
        "fixed_priority", "round_robin", "weighted_round_robin", "lottery", "random", "smart_round_robin"
    ] = "fixed_priority"
    AUTO_RETRY: AutoRetry = True
    rate_limit: RateLimits = Field(default_factory=dict)
    RATE_LIMIT: RateLimits = Field(default_factory=dict)
    ENABLE_MODERATION: Flag = False
    credits: Annotated[
        float, BeforeValidator(_env), Strict(), Field(allow_inf_nan=False), AfterValidator(_credits)
    ] = -1.0
    created_at: Timestamp | None = None


def _all_models() -> list[str | dict[str, int]]:
    return ["all"]


class ApiKeyConfig(_Strict):
    """``api_keys[]`` (uni-api-compat.md §2.4); ``model`` rules follow §2.6."""

    api: Name
    model: list[KeyModelRule] = Field(default_factory=_all_models)
    role: Text | None = None
    preferences: ApiKeyPreferences = Field(default_factory=ApiKeyPreferences)


class GlobalPreferences(_Strict):
    """Top-level ``preferences`` (uni-api-compat.md §2.5) plus unigate's moderation settings.

    ``model_price`` values are ``"input,output"`` USD per 1M tokens (``"2.5,10"``) and become
    :class:`Price`; a bare number ``N`` is accepted too and means the same price for input and
    output. Keys are matched by model-name prefix (§2.5); uni-api's code default ``0.3,1`` is the
    consumer's to apply when no key matches.
    """

    model_timeout: SecondsMap = Field(default_factory=dict)
    cooldown_period: NonNegative = 300.0
    error_triggers: list[Name] = Field(default_factory=list)
    rate_limit: RateLimits = Field(default_factory=dict)
    keepalive_interval: SecondsMap = Field(default_factory=dict)
    proxy: OptionalProxy = None
    model_price: dict[Text, ModelPrice] = Field(default_factory=dict)
    timeout_policy: FreeMap | None = None
    hedging: FreeMap | None = None
    moderation_model: Name = "omni-moderation-latest"
    moderation_fail_open: Flag = True


def _some_providers(value: list[ProviderConfig]) -> list[ProviderConfig]:
    if not value:
        raise ValueError("at least one provider is required")
    return value


class ApiYaml(_Strict):
    """The whole ``api.yaml`` (uni-api-compat.md §2.1)."""

    providers: Annotated[list[ProviderConfig], AfterValidator(_some_providers)]
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    preferences: GlobalPreferences = Field(default_factory=GlobalPreferences)
    ENABLE_MODERATION: Flag | None = None
    video_providers: list[dict[Text, Any]] | None = None


# ---------------------------------------------------------------------------- unsupported keys

# fmt: off
UNSUPPORTED: Final[frozenset[str]] = frozenset((
    "video_providers", "exclude_endpoints", "only_request_types", "exclude_request_types",
    "exclude_request_rules", "responses_stream_commit_policy", "timeout_policy", "search_defaults",
    "access_key", "secret_key", "hedging", "passthrough_request_headers", "max_request_body_bytes",
    "api_key_rate_limit_cooldown_period", "api_key_quota_cooldown_period", "smart_round_robin",
))
# fmt: on
"""Keys uni-api documents that unigate accepts but does not implement yet, and choice values
(``smart_round_robin`` of ``SCHEDULING_ALGORITHM`` / ``api_key_schedule_algorithm``) likewise."""

PathPart = str | int
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def format_path(path: Sequence[PathPart]) -> str:
    """``("providers", 2, "preferences", "timeout_policy")`` → ``providers[2].preferences.timeout_policy``.

    Map keys that are not identifier-like (``gpt-3.5``) are written as ``["gpt-3.5"]``.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def iter_unsupported(
    cfg: BaseModel, path: tuple[PathPart, ...] = ()
) -> Iterator[tuple[tuple[PathPart, ...], str | None]]:
    """Yield ``(path, value)`` for every explicitly set unsupported key (value None) or choice
    value (the value itself), in document order of the model's fields."""
    for name, info in type(cfg).model_fields.items():
        if name not in cfg.model_fields_set:
            continue
        value = getattr(cfg, name)
        here = (*path, name)
        if name in UNSUPPORTED:
            yield here, None
        elif get_origin(info.annotation) is Literal and isinstance(value, str) and value in UNSUPPORTED:
            yield here, value
        elif isinstance(value, BaseModel):
            yield from iter_unsupported(value, here)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from iter_unsupported(item, (*here, i))


def unsupported_keys(cfg: ApiYaml) -> list[str]:
    """Dotted paths of keys set in ``cfg`` that unigate accepts but does not implement yet,
    e.g. ``providers[2].preferences.timeout_policy`` (see :data:`UNSUPPORTED`)."""
    return [format_path(p) for p, _ in iter_unsupported(cfg)]
