"""Harnesses of the providers beyond the first five: one ``tests/battery/harness_<host>.py``
module each, registered here by provider id (the ids of ``matrix.PROVIDERS``)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.battery.harness import Harness

Starter = Callable[[], "AbstractContextManager[Harness]"]

STARTERS: dict[str, Starter] = {}
"""provider id → a context manager that starts its fake and gateway and yields the harness."""


def _cohere() -> AbstractContextManager[Harness]:
    from tests.battery import harness_cohere

    return harness_cohere.start()


STARTERS["cohere"] = _cohere


def _azure() -> AbstractContextManager[Harness]:
    from tests.battery import harness_openai_hosts

    return harness_openai_hosts.start_azure()


def _cloudflare() -> AbstractContextManager[Harness]:
    from tests.battery import harness_openai_hosts

    return harness_openai_hosts.start_cloudflare()


def _openrouter() -> AbstractContextManager[Harness]:
    from tests.battery import harness_openai_hosts

    return harness_openai_hosts.start_openrouter()


STARTERS.update(azure=_azure, cloudflare=_cloudflare, openrouter=_openrouter)


def _bedrock_claude() -> AbstractContextManager[Harness]:
    from tests.battery import harness_bedrock

    return harness_bedrock.start("bedrock-claude")


def _bedrock_converse() -> AbstractContextManager[Harness]:
    from tests.battery import harness_bedrock

    return harness_bedrock.start("bedrock-converse")


STARTERS.update({"bedrock-claude": _bedrock_claude, "bedrock-converse": _bedrock_converse})
