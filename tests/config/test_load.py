"""Loading api.yaml: positions of problems, ${VAR} expansion, sources, semantic checks, secrecy."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from unigate.config.load import (
    ConfigError,
    LoadedConfig,
    Problem,
    load_path,
    load_source,
    load_text,
    resolve_source,
)
from unigate.config.values import Price

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "api.yaml"

MINIMAL = """\
providers:
  - provider: openai
    base_url: https://api.openai.com/v1
    api: sk-upstream-placeholder
    model:
      - gpt-4o
api_keys:
  - api: sk-client
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_text(text, "api.yaml", env={} if env is None else env)
    return info.value.problems


def only(text: str, env: dict[str, str] | None = None) -> Problem:
    found = problems(text, env)
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------------------- positions


def test_unknown_key_is_reported_at_the_key_with_a_suggestion() -> None:
    text = MINIMAL.replace("    model:\n", "    preferences:\n      model_timeot: 5\n    model:\n")
    p = only(text)
    assert (p.line, p.column) == (6, 7)
    assert p.path == "providers[0].preferences.model_timeot"
    assert p.message == "unknown key 'model_timeot'; did you mean 'model_timeout'?"
    assert str(p) == f"api.yaml:6:7: {p.path}: {p.message}"


def test_misplaced_keys_get_a_where_hint() -> None:
    text = MINIMAL.replace("    model:\n", "    cooldown_period: 5\n    preferences:\n      tools: false\n    model:\n")
    found = problems(text)
    assert [(p.line, p.column, p.path) for p in found] == [
        (5, 5, "providers[0].cooldown_period"),
        (7, 7, "providers[0].preferences.tools"),
    ]
    assert found[0].message.endswith("it belongs under 'preferences'")
    assert found[1].message.endswith("it belongs one level up, next to 'preferences'")
    case = only(MINIMAL + "    preferences:\n      auto_retry: true\n")
    assert case.message.endswith("did you mean 'AUTO_RETRY'?")


def test_wrong_values_are_reported_at_the_value() -> None:
    p = only(MINIMAL.replace("      - gpt-4o\n", "      - gpt-4o\n    tools: maybe\n"))
    assert (p.line, p.column, p.path) == (7, 12, "providers[0].tools")
    assert p.message == "Input should be a valid boolean (got 'maybe')"

    p = only(MINIMAL + "preferences:\n  cooldown_period: -1\n")
    assert (p.line, p.column, p.path) == (10, 20, "preferences.cooldown_period")
    assert "greater than or equal to 0" in p.message

    p = only(MINIMAL + "    preferences:\n      rate_limit: 10/min,15/fortnight\n")
    assert (p.line, p.column, p.path) == (10, 19, "api_keys[0].preferences.rate_limit")
    assert "unknown unit 'fortnight'" in p.message and "'15/fortnight'" in p.message


def test_an_empty_value_is_reported_at_its_key() -> None:
    p = only(MINIMAL.replace("      - gpt-4o\n", "      - gpt-4o\n    tools:\n"))
    assert (p.line, p.column, p.path) == (7, 5, "providers[0].tools")
    assert p.message == "Input should be a valid boolean (got null)"


def test_yaml_1_2_keeps_no_and_on_as_strings() -> None:
    p = only(MINIMAL.replace("      - gpt-4o\n", "      - on\n      - no\n    tools: no\n"))
    assert p.path == "providers[0].tools" and "got 'no'" in p.message
    loaded = load_text(MINIMAL.replace("      - gpt-4o\n", "      - on\n      - no\n"), env={})
    assert loaded.config.providers[0].model == ["on", "no"]


def test_missing_key_is_reported_at_its_parent_mapping() -> None:
    p = only(MINIMAL + "  - model: [all]\n    role: bob\n")
    assert (p.line, p.column, p.path) == (9, 5, "api_keys[1].api")
    assert p.message == "required key 'api' is missing"


def test_several_problems_come_sorted_and_str_joins_them() -> None:
    text = MINIMAL.replace("    model:\n", "    tools: 3\n    model:\n") + "    rolee: x\n"
    with pytest.raises(ConfigError) as info:
        load_text(text, "cfg.yaml", env={})
    lines = str(info.value).splitlines()
    assert lines == [str(p) for p in info.value.problems]
    assert [(p.line, p.path) for p in info.value.problems] == [(5, "providers[0].tools"), (10, "api_keys[0].rolee")]


def test_yaml_syntax_errors_and_empty_files() -> None:
    p = only("providers:\n  - provider: a\n    api: [x\napi_keys: []\n")
    assert p.line == 4 and p.message.startswith("invalid YAML:")
    tab = only("providers:\n\t- provider: a\n")
    assert (tab.line, tab.column) == (2, 1)
    assert "empty" in only("").message
    assert "empty" in only("# nothing but a comment\n").message
    top = only("- provider: a\n")
    assert (top.line, top.column, top.path) == (1, 1, "") and "top level must be a mapping" in top.message


def test_duplicate_yaml_keys_do_not_echo_values() -> None:
    p = only(
        MINIMAL.replace(
            "    api: sk-upstream-placeholder\n", "    api: sk-first-secret-1234\n    api: sk-second-secret-5678\n"
        )
    )
    assert (p.line, p.column) == (5, 5)
    assert p.message == "duplicate key 'api' in this mapping"
    assert "secret" not in str(p)


def test_merge_keys_and_anchors_are_supported() -> None:
    text = MINIMAL.replace(
        "    model:\n", "    preferences:\n      <<: &prefs {cooldown_period: 7}\n      proxy: ''\n    model:\n"
    )
    loaded = load_text(text, env={})
    assert loaded.config.providers[0].preferences.cooldown_period == 7.0


# ---------------------------------------------------------------------------- ${VAR} expansion


ENV_TEXT = """\
providers:
  - provider: openai
    base_url: ${BASE:-https://api.openai.com/v1}
    api: ${UPSTREAM_KEY}
    headers_note: ignored
api_keys:
  - api: "${CLIENT_KEY}"
"""


def env_config(extra: str = "") -> str:
    return ENV_TEXT.replace("    headers_note: ignored\n", extra)


def test_env_set_and_default() -> None:
    loaded = load_text(env_config(), env={"UPSTREAM_KEY": "0123", "CLIENT_KEY": "sk-c"})
    p = loaded.config.providers[0]
    assert p.base_url == "https://api.openai.com/v1"
    assert p.api == "0123"  # a string field keeps the text, leading zero included
    assert loaded.config.api_keys[0].api == "sk-c"
    env = {"UPSTREAM_KEY": "k", "CLIENT_KEY": "c", "BASE": "http://127.0.0.1:9/v1"}
    assert load_text(env_config(), env=env).config.providers[0].base_url == "http://127.0.0.1:9/v1"
    empty = {"UPSTREAM_KEY": "k", "CLIENT_KEY": "c", "BASE": ""}
    assert load_text(env_config(), env=empty).config.providers[0].base_url == "https://api.openai.com/v1"


def test_env_unset_without_default_is_an_error_at_the_scalar() -> None:
    found = problems(env_config(), env={"CLIENT_KEY": "c"})
    assert [(p.line, p.column, p.path) for p in found] == [(4, 10, "providers[0].api")]
    assert "UPSTREAM_KEY is not set" in found[0].message and "${UPSTREAM_KEY:-default}" in found[0].message


def test_env_expansion_types_escapes_and_partial_strings() -> None:
    extra = (
        "    preferences:\n"
        "      cooldown_period: ${COOL:-15}\n"
        "      headers:\n"
        "        Authorization: Bearer ${TOKEN}\n"
        "        X-Literal: $${NOT_A_VAR}\n"
        "        X-Quoted: '${NUM}'\n"
    )
    env = {"UPSTREAM_KEY": "k", "CLIENT_KEY": "c", "TOKEN": "tok-123", "NUM": "42"}
    prefs = load_text(env_config(extra), env=env).config.providers[0].preferences
    assert prefs.cooldown_period == 15.0
    assert prefs.headers == {"Authorization": "Bearer tok-123", "X-Literal": "${NOT_A_VAR}", "X-Quoted": "42"}
    bad = only(env_config("    notes: ${lower-case}\n"), env={"UPSTREAM_KEY": "k", "CLIENT_KEY": "c"})
    assert bad.path == "providers[0].notes" and "malformed" in bad.message


def test_env_values_that_fail_validation_never_echo_the_secret() -> None:
    extra = "    tools: ${SECRET}\n"
    p = only(env_config(extra), env={"UPSTREAM_KEY": "k", "CLIENT_KEY": "c", "SECRET": "sk-live-abcdefghijklmnop"})
    assert p.path == "providers[0].tools"
    assert "sk-live" not in str(p) and "got a string" in p.message


# ---------------------------------------------------------------------------- secrets


def test_secrets_in_wrong_typed_fields_never_appear() -> None:
    text = MINIMAL.replace(
        "    model:\n",
        "    aws_secret_key: [aws-secret-value-0001]\n"
        "    private_key: {k: private-key-value-0002}\n"
        "    preferences:\n"
        "      api_key_rate_limit: sk-pasted-by-mistake-0003\n"
        "      headers: {Authorization: [Bearer header-token-0004]}\n"
        "    model:\n",
    ) + (
        "    preferences:\n"
        "      AUTO_RETRY: sk-client-secret-0005\n"
        "  - api: sk-client\n"
        "  - api: {nested: sk-nested-0006}\n"
        "  - api: sk-other-client\n"
        "    model: [sk-unconfigured-key-0007/*, {sk-weighted-key-0008/*: heavy}]\n"
        "    sk-typo-key-0009-abcdef: 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_text(text, "api.yaml", env={})
    message = str(info.value)
    for n in range(1, 10):
        assert f"000{n}" not in message, (n, message)
    assert "sk-client" not in message
    assert "duplicate client key (same as api_keys[0].api)" in message
    assert len(info.value.problems) >= 8


def test_url_credentials_are_not_shown(http_server: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_source(f"{http_server}/missing.yaml?token=query-secret", env={})
    [p] = info.value.problems
    assert p.file == f"{http_server}/missing.yaml" and "HTTP 404" in p.message
    assert "query-secret" not in str(info.value)


# ---------------------------------------------------------------------------- semantic checks


def test_duplicate_provider_names_and_client_keys() -> None:
    text = MINIMAL.replace("api_keys:\n", "  - provider: openai\n    api: sk-2\napi_keys:\n") + "  - api: sk-client\n"
    found = problems(text)
    assert [(p.line, p.column, p.path, p.message) for p in found] == [
        (7, 15, "providers[1].provider", "duplicate provider name 'openai' (same as providers[0].provider)"),
        (11, 10, "api_keys[1].api", "duplicate client key (same as api_keys[0].api)"),
    ]


def test_rules_naming_unknown_channels_and_models_warn() -> None:
    text = MINIMAL + "    model: [opneai/*, openai/gpt-4o-mnii, gpt-5, sk-missing-client-key/*, <vendor/x>, openai/*]\n"
    loaded = load_text(text, "api.yaml", env={})
    assert list(loaded.warnings) == [
        "api.yaml:9:13: api_keys[0].model[0]: no provider is named 'opneai'; the rule matches nothing; "
        "did you mean 'openai'?",
        "api.yaml:9:23: api_keys[0].model[1]: provider 'openai' offers no model 'gpt-4o-mnii'; did you mean 'gpt-4o'?",
        "api.yaml:9:43: api_keys[0].model[2]: no provider offers model 'gpt-5'; the rule matches nothing; "
        "did you mean 'gpt-4o'?",
        "api.yaml:9:50: api_keys[0].model[3]: the rule names a client key that is not configured in api_keys",
    ]


def test_a_key_used_as_its_own_channel_is_an_error() -> None:
    p = only(MINIMAL + "    model: [sk-client/*]\n")
    assert p.path == "api_keys[0].model[0]" and "itself" in p.message and "sk-client" not in str(p)


def test_empty_providers_and_no_api_keys() -> None:
    p = only("providers: []\napi_keys: [{api: k}]\n")
    assert (p.line, p.column, p.path, p.message) == (1, 12, "providers", "at least one provider is required")
    loaded = load_text("providers:\n  - provider: p\n", "x.yaml", env={})
    assert loaded.warnings == ("x.yaml:1:1: no api_keys: every client request will be refused",)


def test_unsupported_keys_become_positioned_warnings() -> None:
    text = MINIMAL.replace("    model:\n", "    exclude_endpoints: [/v1/embeddings]\n    model:\n") + (
        "    preferences:\n      SCHEDULING_ALGORITHM: smart_round_robin\n"
    )
    loaded = load_text(text, "api.yaml", env={})
    assert loaded.warnings == (
        "api.yaml:5:5: providers[0].exclude_endpoints: key accepted but not supported yet",
        "api.yaml:11:29: api_keys[0].preferences.SCHEDULING_ALGORITHM: "
        "value 'smart_round_robin' accepted but not supported yet",
    )


# ---------------------------------------------------------------------------- whole files


def test_the_example_config_loads_cleanly() -> None:
    loaded = load_path(EXAMPLE, env={})
    c = loaded.config
    first = c.providers[0]
    assert first.provider == "openai" and first.base_url == "https://api.openai.com/v1"
    assert first.api == "sk-placeholder" and first.model == ["gpt-4o", "gpt-4o-mini"]
    assert (c.api_keys[0].api, c.api_keys[0].role) == ("sk-client", "admin")
    assert c.preferences.model_price["gpt-4o"] == Price(2.5, 10.0)
    # Every warning is about a key or value that is accepted but not implemented yet.
    assert loaded.warnings and all("not supported yet" in w for w in loaded.warnings)
    custom = load_path(EXAMPLE, env={"UPSTREAM_BASE_URL": "http://127.0.0.1:1/v1", "OPENAI_API_KEY": "sk-real"})
    assert custom.config.providers[0].base_url == "http://127.0.0.1:1/v1"
    assert custom.config.providers[0].api == "sk-real"


def test_the_example_uses_every_documented_key() -> None:
    text = EXAMPLE.read_text()
    documented = [
        *("providers", "api_keys", "preferences", "ENABLE_MODERATION", "video_providers"),
        *("provider", "base_url", "api", "model", "tools", "image", "engine", "notes", "project_id", "private_key"),
        *("client_email", "region", "cf_account_id", "aws_access_key", "aws_secret_key", "aws_session_token"),
        *("exclude_endpoints", "only_request_types", "exclude_request_types", "exclude_request_rules"),
        *("api_key_rate_limit", "api_key_schedule_algorithm", "api_key_cooldown_period"),
        *("api_key_rate_limit_cooldown_period", "api_key_quota_cooldown_period", "model_timeout"),
        *("keepalive_interval", "proxy", "headers", "post_body_parameter_overrides", "cooldown_period"),
        *("max_request_body_bytes", "passthrough_request_headers", "responses_stream_commit_policy"),
        *("timeout_policy", "search_defaults", "access_key", "secret_key", "role", "SCHEDULING_ALGORITHM"),
        *("AUTO_RETRY", "rate_limit", "credits", "created_at", "error_triggers", "model_price", "hedging"),
    ]
    missing = [key for key in documented if f"{key}:" not in text]
    assert missing == []


UNI_API_STYLE = """\
providers:
  - provider: provider_name
    base_url: https://api.your.com/v1/chat/completions
    api: sk-YgS6GTi0b4bEabc4C
    model:
      - gpt-4o
      - claude-3-5-sonnet-20240620: claude-3-5-sonnet
      - dall-e-3

  - provider: anthropic
    base_url: https://api.anthropic.com/v1/messages
    api:
      - sk-ant-api03-bNnAOJyA-xQw_twAA
      - sk-ant-api02-bNnxxxx
    model:
      - claude-3-5-sonnet-20240620: claude-3-5-sonnet
    tools: true

  - provider: gemini
    base_url: https://generativelanguage.googleapis.com/v1beta
    api:
      - AIzaSyAN2k6IRdgw123
      - AIzaSyAN2k6IRdgw456
    model:
      - gemini-1.5-pro
      - gemini-1.5-flash-exp-0827: gemini-1.5-flash
    tools: true
    preferences:
      api_key_rate_limit: 15/min
      api_key_cooldown_period: 60
      api_key_schedule_algorithm: round_robin
      model_timeout:
        gemini-1.5-pro: 10
        default: 10
      keepalive_interval:
        gemini-1.5-pro: 50
      proxy: socks5://[username]:[password]@[ip]:[port]
      headers:
        Custom-Header-1: Value-1

  - provider: cloudflare
    api: f42b3xxxxxxxxxxq4aoGAh
    cf_account_id: 8ec0xxxxxxxxxxxxe721
    model:
      - '@cf/meta/llama-3.1-8b-instruct': llama-3.1-8b

  - provider: other-provider
    base_url: https://api.xxx.com/v1/messages
    api: sk-bNnAOJyA-xQw_twAA
    model:
      - causallm-35b-beta2ep-q6k: causallm-35b
      - anthropic/claude-3-5-sonnet
    tools: false
    engine: openrouter

api_keys:
  - api: sk-KjjI60Yf0JFWxfgRmXqFWyGtWUd9GZnmi3KlvowmRWpWpQRo
    model:
      - gpt-4o
      - claude-3-5-sonnet
      - gemini/*
    role: admin

  - api: sk-pkhf60Yf0JGyJxgRmXqFQyTgWUd9GZnmi3KlvowmRWpWqrhy
    model:
      - anthropic/claude-3-5-sonnet
      - <anthropic/claude-3-5-sonnet>
      - openai/*
    preferences:
      SCHEDULING_ALGORITHM: fixed_priority
      AUTO_RETRY: true
      rate_limit: 15/min,10/day
      ENABLE_MODERATION: true

  - api: sk-KjjI60Yd0JFWtxxxxxxxxxxxxxxwmRWpWpQRo
    model:
      - anthropic/claude-3-5-sonnet: 5
      - provider_name/*: 3
      - gemini/*: 2
    preferences:
      SCHEDULING_ALGORITHM: weighted_round_robin
      AUTO_RETRY: true
      credits: 10
      created_at: 2024-01-01T00:00:00+08:00

preferences:
  model_timeout:
    gpt-4o: 10
    claude-3-5-sonnet: 10
    default: 10
  cooldown_period: 300
  rate_limit: 999999/min
  error_triggers:
    - The bot's usage is covered by the developer
  model_price:
    gpt-4o: 1,2
    claude-3-5-sonnet: 0.12,0.48
    default: 1,2
"""


def test_a_realistic_uni_api_config_loads_unchanged() -> None:
    loaded = load_text(UNI_API_STYLE, "api.yaml", env={})
    c = loaded.config
    assert [p.provider for p in c.providers] == ["provider_name", "anthropic", "gemini", "cloudflare", "other-provider"]
    assert c.providers[0].model == ["gpt-4o", {"claude-3-5-sonnet-20240620": "claude-3-5-sonnet"}, "dall-e-3"]
    assert c.providers[1].api == ["sk-ant-api03-bNnAOJyA-xQw_twAA", "sk-ant-api02-bNnxxxx"]
    assert c.providers[2].preferences.api_key_rate_limit == {"default": "15/min"}
    assert c.providers[2].preferences.proxy == "socks5://[username]:[password]@[ip]:[port]"
    assert c.providers[3].model == [{"@cf/meta/llama-3.1-8b-instruct": "llama-3.1-8b"}]
    assert c.api_keys[1].model == ["anthropic/claude-3-5-sonnet", "<anthropic/claude-3-5-sonnet>", "openai/*"]
    assert c.api_keys[2].model == [{"anthropic/claude-3-5-sonnet": 5}, {"provider_name/*": 3}, {"gemini/*": 2}]
    assert c.api_keys[2].preferences.SCHEDULING_ALGORITHM == "weighted_round_robin"
    assert c.preferences.model_price["claude-3-5-sonnet"] == Price(0.12, 0.48)
    # uni-api's own example has a rule for a provider named openai that it does not define.
    rule_warnings = tuple(w for w in loaded.warnings if "not supported yet" not in w)
    assert rule_warnings == (
        "api.yaml:68:9: api_keys[1].model[2]: no provider is named 'openai'; the rule matches nothing",
    )


# ---------------------------------------------------------------------------- sources


class _Handler(http.server.BaseHTTPRequestHandler):
    files = {"/api.yaml": MINIMAL.encode()}

    def do_GET(self) -> None:
        body = self.files.get(self.path.split("?")[0])
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/yaml; charset=utf-8")
        self.end_headers()
        self.wfile.write(body or b"not found")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_config_url_over_loopback_http(http_server: str) -> None:
    env = {"CONFIG_URL": f"{http_server}/api.yaml"}
    source = resolve_source(None, env)
    assert source == f"{http_server}/api.yaml"
    loaded = load_source(source, env=env)
    assert isinstance(loaded, LoadedConfig) and loaded.source == source
    assert loaded.config.api_keys[0].api == "sk-client"


def test_config_url_via_file_url(tmp_path: Path) -> None:
    path = tmp_path / "my config.yaml"
    path.write_text(MINIMAL)
    loaded = load_source(resolve_source(None, {"CONFIG_URL": path.as_uri()}), env={})
    assert loaded.config.providers[0].provider == "openai" and loaded.source == str(path)


def test_fetch_is_injectable_and_problems_name_the_url() -> None:
    def fetch(url: str) -> str:
        assert url == "https://config.example/api.yaml"
        return MINIMAL + "bogus: 1\n"

    with pytest.raises(ConfigError) as info:
        load_source("https://config.example/api.yaml", env={}, fetch=fetch)
    assert str(info.value).startswith("https://config.example/api.yaml:9:1: bogus: unknown key 'bogus'")

    def unreachable(url: str) -> str:
        raise TimeoutError("timed out")

    with pytest.raises(ConfigError, match="cannot fetch: timed out"):
        load_source("http://10.255.255.1/api.yaml", env={}, fetch=unreachable)


def test_resolve_source_precedence() -> None:
    assert resolve_source("cli.yaml", {"CONFIG_URL": "http://x/api.yaml"}) == "cli.yaml"
    assert resolve_source(None, {"CONFIG_URL": "http://x/api.yaml"}) == "http://x/api.yaml"
    assert resolve_source(None, {"CONFIG_URL": "  "}) == "./api.yaml"
    assert resolve_source(None, {}) == "./api.yaml"


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_path(tmp_path / "absent.yaml", env={})
    assert str(info.value) == f"{tmp_path / 'absent.yaml'}: file not found"
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"providers:\n  - provider: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_path(bad, env={})
    assert (info.value.problems[0].line, info.value.problems[0].column) == (2, 18)
    with pytest.raises(ConfigError, match="unsupported URL scheme"):
        load_source("ftp://host/api.yaml", env={})
