"""uni-api compatible configuration: the ``api.yaml`` schema and its loader.

``load_source(resolve_source(cli_option))`` is the usual entry point; see ``load.py`` and
``schema.py`` for the contracts.
"""

from unigate.config.load import (
    ConfigError,
    LoadedConfig,
    Problem,
    load_path,
    load_source,
    load_text,
    resolve_source,
)
from unigate.config.schema import (
    UNSUPPORTED,
    ApiKeyConfig,
    ApiKeyPreferences,
    ApiYaml,
    GlobalPreferences,
    ProviderConfig,
    ProviderPreferences,
    unsupported_keys,
)
from unigate.config.values import Price, RateLimit, parse_rate_limit, rule_provider

__all__ = [
    "UNSUPPORTED",
    "ApiKeyConfig",
    "ApiKeyPreferences",
    "ApiYaml",
    "ConfigError",
    "GlobalPreferences",
    "LoadedConfig",
    "Price",
    "Problem",
    "ProviderConfig",
    "ProviderPreferences",
    "RateLimit",
    "load_path",
    "load_source",
    "load_text",
    "parse_rate_limit",
    "resolve_source",
    "rule_provider",
    "unsupported_keys",
]
