"""The api.yaml schema on plain Python data: defaults, coercions, strictness, normalisation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from unigate.config.schema import UNSUPPORTED, ApiYaml, format_path, unsupported_keys
from unigate.config.values import EnvText, Price, RateLimit, parse_rate_limit, rule_provider


def cfg(**top: Any) -> dict[str, Any]:
    """A minimal valid config, with top-level keys replaced by ``top``."""
    base: dict[str, Any] = {"providers": [{"provider": "openai", "api": "sk-up"}], "api_keys": [{"api": "sk-c"}]}
    return base | top


def provider(**keys: Any) -> dict[str, Any]:
    return cfg(providers=[{"provider": "openai", "api": "sk-up", **keys}])


def key_prefs(**prefs: Any) -> dict[str, Any]:
    return cfg(api_keys=[{"api": "sk-c", "preferences": prefs}])


def errors(data: dict[str, Any]) -> list[tuple[tuple[Any, ...], str, str]]:
    with pytest.raises(ValidationError) as info:
        ApiYaml.model_validate(data)
    return [(e["loc"], e["type"], e["msg"]) for e in info.value.errors()]


def test_defaults_follow_uni_api() -> None:
    c = ApiYaml.model_validate(cfg())
    p, k = c.providers[0], c.api_keys[0]
    assert (p.region, p.tools, p.image, p.model) == ("global", True, True, None)
    assert p.preferences.api_key_schedule_algorithm == "round_robin"
    assert p.preferences.api_key_cooldown_period == 0.0
    assert p.preferences.cooldown_period is None  # falls back to the global one
    assert k.model == ["all"] and k.role is None
    assert k.preferences.SCHEDULING_ALGORITHM == "fixed_priority"
    assert k.preferences.AUTO_RETRY is True and k.preferences.ENABLE_MODERATION is False
    assert k.preferences.credits == -1.0 and k.preferences.created_at is None
    assert c.preferences.cooldown_period == 300.0
    assert c.preferences.moderation_model == "omni-moderation-latest"
    assert c.preferences.moderation_fail_open is True
    assert c.ENABLE_MODERATION is None and c.video_providers is None
    assert c.api_keys is not None and ApiYaml.model_validate({"providers": cfg()["providers"]}).api_keys == []


def test_integers_are_coerced_to_strings_where_uni_api_does() -> None:
    c = ApiYaml.model_validate(
        cfg(providers=[{"provider": 123, "api": [456, "sk-x"], "model": [7, {8: 9}]}], api_keys=[{"api": 42}])
    )
    assert c.providers[0].provider == "123"
    assert c.providers[0].api == ["456", "sk-x"]
    assert c.providers[0].model == ["7", {"8": "9"}]
    assert c.api_keys[0].api == "42"


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        (cfg(extra=1), ("extra",)),
        (provider(modle=["x"]), ("providers", 0, "modle")),
        (provider(preferences={"model_timeot": 5}), ("providers", 0, "preferences", "model_timeot")),
        (cfg(api_keys=[{"api": "k", "weights": {}}]), ("api_keys", 0, "weights")),
        (key_prefs(auto_retry=True), ("api_keys", 0, "preferences", "auto_retry")),
        (cfg(preferences={"cooldown": 1}), ("preferences", "cooldown")),
        (provider(exclude_request_rules=[{"match": {"endpont": "/v1"}}]),
         ("providers", 0, "exclude_request_rules", 0, "match", "endpont")),
    ],
)  # fmt: skip
def test_unknown_keys_are_errors_at_every_level(data: dict[str, Any], loc: tuple[Any, ...]) -> None:
    assert errors(data) == [(loc, "extra_forbidden", "Extra inputs are not permitted")]


@pytest.mark.parametrize("value", ["maybe", "no", "yes", 1, None])
def test_booleans_are_strict(value: Any) -> None:
    [(loc, kind, _)] = errors(provider(tools=value))
    assert loc == ("providers", 0, "tools") and kind == "bool_type"


def test_numbers_are_checked() -> None:
    assert errors(cfg(preferences={"cooldown_period": -1}))[0][:2] == (
        ("preferences", "cooldown_period"),
        "greater_than_equal",
    )
    assert errors(cfg(preferences={"cooldown_period": "300"}))[0][1] == "float_type"
    assert errors(cfg(preferences={"cooldown_period": True}))[0][1] == "float_type"
    assert errors(cfg(preferences={"model_timeout": {"gpt": 0}}))[0][0] == ("preferences", "model_timeout", "gpt")
    assert errors(cfg(preferences={"model_timeout": [1]}))[0][1] == "value_error"


def test_number_or_map_keys_are_normalised_to_maps() -> None:
    c = ApiYaml.model_validate(
        cfg(
            preferences={"model_timeout": 30, "keepalive_interval": {"gpt-4o": 5}, "rate_limit": "10/min"},
            providers=[{"provider": "p", "preferences": {"api_key_rate_limit": "15/min,100/day", "model_timeout": 9}}],
        )
    )
    assert c.preferences.model_timeout == {"default": 30.0}
    assert c.preferences.keepalive_interval == {"gpt-4o": 5.0}
    assert c.preferences.rate_limit == {"default": "10/min"}
    assert c.providers[0].preferences.api_key_rate_limit == {"default": "15/min,100/day"}
    assert c.providers[0].preferences.model_timeout == {"default": 9.0}


def test_rate_limit_syntax() -> None:
    assert parse_rate_limit("15/min, 1000/day") == (RateLimit(15, "requests", 60), RateLimit(1000, "requests", 86400))
    assert parse_rate_limit("2/mo,1/y,5/s,3/hr") == (
        RateLimit(2, "requests", 30 * 86400),
        RateLimit(1, "requests", 365 * 86400),
        RateLimit(5, "requests", 1),
        RateLimit(3, "requests", 3600),
    )
    assert parse_rate_limit("1000/tpm,5/tpd,4000/tpr") == (
        RateLimit(1000, "tokens", 60),
        RateLimit(5, "tokens", 86400),
        RateLimit(4000, "tokens_per_request", 0),
    )
    with pytest.raises(ValueError, match="unknown unit 'fortnight' in rate limit '15/fortnight'"):
        parse_rate_limit("15/fortnight")
    with pytest.raises(ValueError, match="did you mean 'minute'"):
        parse_rate_limit("15/minutes")
    for bad in ("", "15", "/min", "15/min,", "1.5/min", "15 per min", "15/MIN"):
        with pytest.raises(ValueError):
            parse_rate_limit(bad)


def test_bad_rate_limits_are_config_errors_naming_the_term() -> None:
    [(loc, kind, msg)] = errors(key_prefs(rate_limit={"gpt-4o": "10/min,15/fortnight"}))
    assert loc == ("api_keys", 0, "preferences", "rate_limit", "gpt-4o") and kind == "value_error"
    assert "'15/fortnight'" in msg
    [(loc, _, msg)] = errors(provider(preferences={"api_key_rate_limit": 5}))
    assert loc[:4] == ("providers", 0, "preferences", "api_key_rate_limit") and "N/unit" in msg


def test_choices() -> None:
    assert errors(key_prefs(SCHEDULING_ALGORITHM="weighted"))[0][1] == "literal_error"
    assert errors(provider(preferences={"api_key_schedule_algorithm": "lottery"}))[0][1] == "literal_error"
    ok = ApiYaml.model_validate(key_prefs(SCHEDULING_ALGORITHM="lottery"))
    assert ok.api_keys[0].preferences.SCHEDULING_ALGORITHM == "lottery"


def test_auto_retry_is_bool_or_count_with_one_error_per_mistake() -> None:
    assert ApiYaml.model_validate(key_prefs(AUTO_RETRY=3)).api_keys[0].preferences.AUTO_RETRY == 3
    assert ApiYaml.model_validate(key_prefs(AUTO_RETRY=False)).api_keys[0].preferences.AUTO_RETRY is False
    assert [e[1] for e in errors(key_prefs(AUTO_RETRY="maybe"))] == ["wrong_type"]
    assert [e[1] for e in errors(key_prefs(AUTO_RETRY=-1))] == ["greater_than_equal"]


def test_provider_model_entries() -> None:
    c = ApiYaml.model_validate(provider(model=["gpt-4o", {"claude-3-5-sonnet-20240620": "claude-3-5-sonnet"}]))
    assert c.providers[0].model == ["gpt-4o", {"claude-3-5-sonnet-20240620": "claude-3-5-sonnet"}]
    assert "exactly one" in errors(provider(model=[{"a": "b", "c": "d"}]))[0][2]
    assert errors(provider(model=[{"a": None}]))[0][1] == "string_type"
    assert errors(provider(model=[["nested"]]))[0][1] == "wrong_type"
    assert errors(provider(model="gpt-4o"))[0][1] == "list_type"


def test_api_key_model_rules() -> None:
    rules = ["all", "gpt-4o", "openai/*", "openai/gpt-4o", "<anthropic/claude-3-5-sonnet>", "a/b/c", {"gcp/*": 5}]
    c = ApiYaml.model_validate(cfg(api_keys=[{"api": "k", "model": rules}]))
    assert c.api_keys[0].model == rules
    for bad in ["openai/", "/gpt-4o", "<a/b", "a/b>", "<>", " gpt-4o", ""]:
        assert errors(cfg(api_keys=[{"api": "k", "model": [bad]}])), bad
    assert errors(cfg(api_keys=[{"api": "k", "model": [{"a/*": -1}]}]))[0][1] == "greater_than_equal"
    assert errors(cfg(api_keys=[{"api": "k", "model": [{"a/*": "5"}]}]))[0][1] == "int_type"
    assert "exactly one" in errors(cfg(api_keys=[{"api": "k", "model": [{"a/*": 1, "b/*": 2}]}]))[0][2]


def test_rule_provider() -> None:
    assert rule_provider("openai/*") == "openai"
    assert rule_provider("sk-abc/gpt-4o/x") == "sk-abc"
    assert rule_provider("<a/b>") is None
    assert rule_provider("gpt-4o") is None and rule_provider("all") is None


def test_model_price() -> None:
    c = ApiYaml.model_validate(cfg(preferences={"model_price": {"gpt-4o": "2.5,10", "default": 1, "x": " 0 , 0.5"}}))
    assert c.preferences.model_price == {"gpt-4o": Price(2.5, 10.0), "default": Price(1.0, 1.0), "x": Price(0.0, 0.5)}
    for bad in ["1", "1,2,3", "a,b", "1,-2", -1, "inf,1", True]:
        assert errors(cfg(preferences={"model_price": {"m": bad}}))[0][0] == ("preferences", "model_price", "m"), bad


@pytest.mark.parametrize(
    ("value", "expected"),
    [("20MB", 20_000_000), ("20MiB", 20 * 2**20), ("1.5 KiB", 1536), (4096, 4096), ("512", 512), ("2gb", 2 * 10**9)],
)
def test_max_request_body_bytes(value: Any, expected: int) -> None:
    c = ApiYaml.model_validate(provider(preferences={"max_request_body_bytes": value}))
    assert c.providers[0].preferences.max_request_body_bytes == expected


def test_max_request_body_bytes_rejects_nonsense() -> None:
    for bad in ["lots", "20 parsecs", -5, 0, True]:
        assert errors(provider(preferences={"max_request_body_bytes": bad})), bad


def test_proxy_schemes() -> None:
    for good in ["http://h:1", "HTTPS://h", "socks5://u:p@h:1080", "socks5h://h", "socks4://h"]:
        assert ApiYaml.model_validate(cfg(preferences={"proxy": good})).preferences.proxy == good
    assert ApiYaml.model_validate(cfg(preferences={"proxy": ""})).preferences.proxy is None
    [(_, _, msg)] = errors(cfg(preferences={"proxy": "ftp://user:hunter2@h"}))
    assert "'ftp'" in msg and "hunter2" not in msg
    assert errors(cfg(preferences={"proxy": "127.0.0.1:1080"}))


def test_created_at_and_credits() -> None:
    cn = timezone(timedelta(hours=8))
    cases = [
        ("2024-01-01T00:00:00+08:00", datetime(2024, 1, 1, tzinfo=cn)),
        (date(2024, 1, 2), datetime(2024, 1, 2, tzinfo=UTC)),
        (datetime(2024, 1, 3, 12), datetime(2024, 1, 3, 12, tzinfo=UTC)),
    ]
    for raw, expected in cases:
        got = ApiYaml.model_validate(key_prefs(created_at=raw)).api_keys[0].preferences.created_at
        assert got == expected and got is not None and got.tzinfo is not None
    assert errors(key_prefs(created_at="last tuesday"))
    assert ApiYaml.model_validate(key_prefs(credits=0)).api_keys[0].preferences.credits == 0
    assert errors(key_prefs(credits=-2))[0][0] == ("api_keys", 0, "preferences", "credits")


def test_providers_must_not_be_empty_or_missing() -> None:
    assert errors(cfg(providers=[]))[0][2] == "Value error, at least one provider is required"
    assert errors({"api_keys": []})[0][:2] == (("providers",), "missing")


def test_env_text_keeps_strings_and_reads_numbers() -> None:
    c = ApiYaml.model_validate(
        cfg(
            providers=[{"provider": "p", "api": EnvText("0123"), "tools": EnvText("false"),
                        "preferences": {"post_body_parameter_overrides": {"temperature": EnvText("0.5")}}}],
            preferences={"cooldown_period": EnvText("60"), "proxy": EnvText("")},
            api_keys=[{"api": EnvText("sk-1"), "preferences": {"AUTO_RETRY": EnvText("2")}}],
        )
    )  # fmt: skip
    p = c.providers[0]
    assert p.api == "0123" and type(p.api) is str
    assert p.tools is False
    assert p.preferences.post_body_parameter_overrides == {"temperature": 0.5}
    assert c.preferences.cooldown_period == 60.0 and c.preferences.proxy is None
    assert c.api_keys[0].preferences.AUTO_RETRY == 2 and type(c.api_keys[0].api) is str


def test_models_are_frozen_and_hide_inputs() -> None:
    c = ApiYaml.model_validate(cfg())
    with pytest.raises(ValidationError):
        c.providers[0].tools = False
    with pytest.raises(ValidationError) as info:
        ApiYaml.model_validate(provider(aws_secret_key=["sk-very-secret-value"]))
    assert "sk-very-secret-value" not in str(info.value)


def test_unsupported_keys_lists_set_keys_and_values_only() -> None:
    data = cfg(
        providers=[
            {"provider": "a"},
            {"provider": "b", "exclude_endpoints": ["/v1/embeddings"]},
            {"provider": "c", "preferences": {"timeout_policy": {}, "api_key_schedule_algorithm": "smart_round_robin"}},
        ],
        api_keys=[{"api": "k", "preferences": {"SCHEDULING_ALGORITHM": "smart_round_robin"}}],
        preferences={"hedging": {"enabled": False}},
        video_providers=[{"provider": "v"}],
    )
    assert unsupported_keys(ApiYaml.model_validate(data)) == [
        "providers[1].exclude_endpoints",
        "providers[2].preferences.api_key_schedule_algorithm",
        "providers[2].preferences.timeout_policy",
        "api_keys[0].preferences.SCHEDULING_ALGORITHM",
        "preferences.hedging",
        "video_providers",
    ]
    assert unsupported_keys(ApiYaml.model_validate(cfg())) == []  # defaults are not "set"


def test_unsupported_constant_covers_the_documented_list() -> None:
    expected = {
        "video_providers", "exclude_endpoints", "only_request_types", "exclude_request_types",
        "exclude_request_rules", "responses_stream_commit_policy", "timeout_policy", "search_defaults",
        "access_key", "secret_key", "hedging", "passthrough_request_headers", "max_request_body_bytes",
        "api_key_rate_limit_cooldown_period", "api_key_quota_cooldown_period", "smart_round_robin",
    }  # fmt: skip
    assert expected == UNSUPPORTED


def test_format_path() -> None:
    assert format_path(("providers", 2, "preferences", "timeout_policy")) == "providers[2].preferences.timeout_policy"
    assert format_path(("preferences", "model_timeout", "gpt-4o")) == "preferences.model_timeout.gpt-4o"
    assert format_path(("preferences", "model_timeout", "gpt-3.5")) == 'preferences.model_timeout["gpt-3.5"]'
    assert format_path(()) == ""
