"""The value types of ``api.yaml`` (``schema.py`` builds the models from them): ``${VAR}``
references read with YAML 1.2 core rules, text/number/flag annotations, rate limits
(``15/min,100/day``), proxies, sizes, prices, timestamps, and the rules of a key's ``model`` list.

Contract: every type here is a ``typing.Annotated`` pydantic type (or a helper of one) that checks
strictly — a wrong value is a validation error naming what was expected, never coerced silently —
except that an integer is accepted wherever a string is (uni-api coerces ``provider: 123``).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final, Literal, NamedTuple, Union

from pydantic import AfterValidator, BeforeValidator, Discriminator, Field, Strict, Tag

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
