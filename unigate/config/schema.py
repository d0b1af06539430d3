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
* :class:`EnvText` marks a value that was a whole ``${VAR}`` reference in the YAML (see ``load.py``):
  string fields keep its text; number, boolean and free-form fields read it with YAML 1.2 core rules.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final, Literal, NamedTuple, Union, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    Tag,
)

# ---------------------------------------------------------------------------- scalar helpers


class EnvText(str):
    """A string produced by a plain YAML scalar that was exactly one ``${VAR}`` reference.

    Fields that expect a string keep its text verbatim (so ``api: ${KEY}`` with ``KEY=0123``
    stays ``"0123"``); fields that expect a number, a boolean or free-form data resolve it with
    the YAML 1.2 core schema (``cooldown_period: ${COOLDOWN:-300}`` is the number 300).
    """


_CORE_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_CORE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


def resolve_core(text: str) -> Any:
    """Read ``text`` as a YAML 1.2 core-schema plain scalar: null, bool, int, float or str."""
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _CORE_INT.fullmatch(text):
        return int(text, 0) if text[:2] in ("0o", "0x") else int(text)
    if _CORE_FLOAT.fullmatch(text):
        return float(text)
    return str(text)


def _env(value: Any) -> Any:
    return resolve_core(value) if isinstance(value, EnvText) else value


def _env_deep(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _env_deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_env_deep(v) for v in value]
    return _env(value)


def _to_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return str(value)  # a plain str, never an EnvText
    return value


def _shape(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list):
        return "list"
    return None


def _by_shape(expected: str, **tags: str) -> Discriminator:
    """A union discriminator on the value's YAML shape; ``tags`` maps shape → branch tag.

    Only one branch is validated, so a wrong value yields one clear error, not one per branch.
    """

    def pick(value: Any) -> str | None:
        shape = _shape(_env(value))
        return tags.get(shape) if shape else None

    return Discriminator(pick, custom_error_type="wrong_type", custom_error_message=f"expected {expected}")


Text = Annotated[str, BeforeValidator(_to_text), Strict()]
"""A string; an integer is coerced (uni-api does the same)."""
Name = Annotated[str, BeforeValidator(_to_text), Strict(), Field(min_length=1)]
Flag = Annotated[bool, BeforeValidator(_env), Strict()]
NonNegative = Annotated[float, BeforeValidator(_env), Strict(), Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, BeforeValidator(_env), Strict(), Field(gt=0, allow_inf_nan=False)]
FreeMap = Annotated[dict[Text, Any], BeforeValidator(_env_deep)]


def _default_map(expected: str) -> Any:
    def normalise(value: Any) -> Any:
        value = _env(value)
        if isinstance(value, Mapping):
            return value
        if value is None or isinstance(value, list | bool):
            raise ValueError(f"expected {expected}")
        return {"default": value}

    return BeforeValidator(normalise)


SecondsMap = Annotated[
    dict[Text, Positive], _default_map("a number of seconds, or a map of model → seconds (with 'default')")
]
"""``model_timeout`` / ``keepalive_interval``: a bare number means ``{"default": n}``."""

# ---------------------------------------------------------------------------- rate limits

RateKind = Literal["requests", "tokens", "tokens_per_request"]


class RateLimit(NamedTuple):
    """One ``N/unit`` term: ``limit`` requests or tokens per ``period`` seconds (0 for ``tpr``)."""

    limit: int
    kind: RateKind
    period: int


_RATE_UNITS: Final[dict[str, tuple[RateKind, int]]] = {
    **dict.fromkeys(("s", "sec", "second"), ("requests", 1)),
    **dict.fromkeys(("m", "min", "minute"), ("requests", 60)),
    **dict.fromkeys(("h", "hr", "hour"), ("requests", 3600)),
    **dict.fromkeys(("d", "day"), ("requests", 86400)),
    **dict.fromkeys(("mo", "month"), ("requests", 30 * 86400)),
    **dict.fromkeys(("y", "year"), ("requests", 365 * 86400)),
    "tpm": ("tokens", 60),
    "tpd": ("tokens", 86400),
    "tpr": ("tokens_per_request", 0),
}
_RATE_TERM = re.compile(r"([0-9]+)/([A-Za-z]+)")


def parse_rate_limit(text: str) -> tuple[RateLimit, ...]:
    """Parse uni-api's rate syntax ``N/unit[,N/unit…]`` (§7); every term is enforced.

    Units: s/sec/second, m/min/minute, h/hr/hour, d/day, mo/month (30 days), y/year (365 days),
    tpm and tpd (tokens per minute/day), tpr (tokens per request). Raises ``ValueError`` with a
    message that quotes a term only when it has the ``N/word`` shape (never a pasted secret).
    """
    terms: list[RateLimit] = []
    for raw in text.split(","):
        term = raw.strip()
        match = _RATE_TERM.fullmatch(term)
        if match is None:
            raise ValueError("expected a rate limit like '15/min' or '15/min,1000/day' (N/unit, comma separated)")
        unit = match.group(2)
        if unit not in _RATE_UNITS:
            close = difflib.get_close_matches(unit, list(_RATE_UNITS), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ValueError(
                f"unknown unit {unit!r} in rate limit {term!r}{hint} "
                "(units: s/sec/second, m/min/minute, h/hr/hour, d/day, mo/month, y/year, tpm, tpd, tpr)"
            )
        kind, period = _RATE_UNITS[unit]
        terms.append(RateLimit(int(match.group(1)), kind, period))
    return tuple(terms)


def _check_rate(text: str) -> str:
    parse_rate_limit(text)
    return text


RateText = Annotated[str, BeforeValidator(_to_text), Strict(), AfterValidator(_check_rate)]
RateLimits = Annotated[
    dict[Text, RateText], _default_map("a rate limit string like '15/min', or a map of model → rate limit")
]
"""A rate limit string or map; a bare string means ``{"default": s}``."""

# ---------------------------------------------------------------------------- other value types


def _check_proxy(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or not rest:
        raise ValueError("expected a proxy URL such as http://host:port or socks5://user:pass@host:port")
    if scheme.lower() not in ("http", "https", "socks5", "socks5h", "socks4"):
        shown = f" {scheme!r}" if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,15}", scheme) else ""
        raise ValueError(f"unsupported proxy scheme{shown}; use http://, https://, socks5://, socks5h:// or socks4://")
    return url


ProxyUrl = Annotated[str, BeforeValidator(_to_text), Strict(), AfterValidator(_check_proxy)]
OptionalProxy = Annotated[ProxyUrl | None, BeforeValidator(lambda v: None if v == "" else v)]
"""A proxy URL or None; an empty string (``proxy: ${PROXY:-}``) means no proxy."""

_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|B)?", re.IGNORECASE)
_SIZE_FACTORS: Final = {"": 1, "b": 1} | {
    f"{prefix}{infix}b": base ** (power + 1)
    for power, prefix in enumerate("kmgt")
    for infix, base in (("", 1000), ("i", 1024))
}


def _parse_size(value: Any) -> Any:
    """Bytes from an integer or a string like ``20MB`` (10^6) or ``20MiB`` (2^20)."""
    value = _env(value)
    if isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        return int(float(match.group(1)) * _SIZE_FACTORS[(match.group(2) or "").lower()])
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("expected a byte count such as 20971520, '20MB' or '20MiB'")


ByteSize = Annotated[int, BeforeValidator(_parse_size), Strict(), Field(gt=0)]


class Price(NamedTuple):
    """USD per million tokens: ``input`` (prompt) and ``output`` (completion)."""

    input: float
    output: float


def _parse_price(value: Any) -> Price:
    value = _env(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        parts = [float(value)] * 2
    elif isinstance(value, str) and len(pieces := value.split(",")) == 2:
        try:
            parts = [float(p) for p in pieces]
        except ValueError:
            parts = []
    else:
        parts = []
    if len(parts) != 2 or not all(math.isfinite(p) and p >= 0 for p in parts):
        raise ValueError("expected 'input,output' USD per 1M tokens (two non-negative numbers, e.g. '2.5,10')")
    return Price(parts[0], parts[1])


ModelPrice = Annotated[Price, BeforeValidator(_parse_price)]


def _parse_timestamp(value: Any) -> Any:
    """An aware datetime: naive timestamps and plain dates are taken as UTC."""
    value = _env(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("expected an ISO 8601 date or timestamp, e.g. 2024-01-01T00:00:00+08:00") from None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ValueError("expected an ISO 8601 date or timestamp, e.g. 2024-01-01T00:00:00+08:00")


Timestamp = Annotated[datetime, BeforeValidator(_parse_timestamp)]


def _single(what: str) -> Any:
    def check(value: dict[str, Any]) -> dict[str, Any]:
        if len(value) != 1:
            raise ValueError(f"expected exactly one '{what}' pair in this entry")
        return value

    return AfterValidator(check)


StrOrList = Annotated[
    Union[Annotated[Text, Tag("<string>")], Annotated[list[Text], Tag("<list>")]],  # noqa: UP007
    _by_shape("a string or a list of strings", string="<string>", number="<string>", list="<list>"),
]
ProviderModel = Annotated[
    Union[  # noqa: UP007
        Annotated[Name, Tag("<string>")],
        Annotated[dict[Name, Name], _single("upstream_name: alias"), Tag("<map>")],
    ],
    _by_shape(
        "a model name or a single 'upstream_name: alias' pair",
        string="<string>",
        number="<string>",
        map="<map>",
    ),
]

# ---------------------------------------------------------------------------- api_keys model rules


def rule_provider(rule: str) -> str | None:
    """The channel named by an ``api_keys[].model`` rule (text before the first ``/``), else None.

    ``all``, plain names and ``<a/b>`` literals name no channel (§2.6). The channel may be a
    provider name or another client key (``sk-…/model``, uni-api's "key as channel").
    """
    if rule.startswith("<") or "/" not in rule:
        return None
    return rule.partition("/")[0]


def _check_rule(rule: str) -> str:
    if rule != rule.strip():
        raise ValueError("model rule has leading or trailing spaces")
    if rule.startswith("<") or rule.endswith(">"):
        if not (rule.startswith("<") and rule.endswith(">") and len(rule) > 2):
            raise ValueError("a literal rule needs a name between both angle brackets, like <vendor/model>")
        return rule
    prov, slash, rest = rule.partition("/")
    if slash and not prov:
        raise ValueError("model rule starts with '/'; expected 'provider/model' or 'provider/*'")
    if slash and not rest:
        raise ValueError("model rule ends with '/'; use 'provider/*' for all of a provider's models")
    return rule


Rule = Annotated[str, BeforeValidator(_to_text), Strict(), Field(min_length=1), AfterValidator(_check_rule)]
Weight = Annotated[int, BeforeValidator(_env), Strict(), Field(ge=0)]
KeyModelRule = Annotated[
    Union[  # noqa: UP007
        Annotated[Rule, Tag("<string>")],
        Annotated[dict[Rule, Weight], _single("rule: weight"), Tag("<map>")],
    ],
    _by_shape("a model rule or a single 'rule: weight' pair", string="<string>", number="<string>", map="<map>"),
]
AutoRetry = Annotated[
    Union[  # noqa: UP007
        Annotated[bool, Strict(), Tag("<bool>")],
        Annotated[int, Strict(), Field(ge=0), Tag("<number>")],
    ],
    _by_shape("true, false or a number of retries (≥ 0)", bool="<bool>", number="<number>"),
    BeforeValidator(_env),
]

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
