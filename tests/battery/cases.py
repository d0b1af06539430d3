"""The bridge from ``matrix.TABLE`` to pytest: which providers a scenario's test runs for.

``cases(scenario)`` gives one ``pytest.param`` per ``yes`` cell, and per ``bug`` cell one marked
strict-xfail with the cell's note; ``refusal_cases()`` gives every ``400`` cell. Each call records
the scenario, so ``test_matrix.py`` can prove that every supported cell has a test.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.battery.matrix import PROVIDER_IDS, SCENARIO_IDS, TABLE

USED: set[str] = set()


def cases(scenario: str) -> list[Any]:
    """Providers for the ``yes`` (and ``bug``) cells of ``scenario``, for ``indirect`` parametrisation
    of the ``h`` fixture."""
    if scenario not in SCENARIO_IDS:
        raise KeyError(f"unknown scenario {scenario!r}")
    USED.add(scenario)
    params: list[Any] = []
    for provider in PROVIDER_IDS:
        cell = TABLE[scenario][provider]
        if cell.status == "yes":
            params.append(pytest.param(provider, id=provider))
        elif cell.status == "bug":
            xfail = pytest.mark.xfail(strict=True, reason=f"BUG: {cell.note}")
            params.append(pytest.param(provider, id=provider, marks=xfail))
    return params


def refusal_cases() -> list[Any]:
    """``(provider, scenario)`` for every ``400`` cell, grouped by provider."""
    return [
        pytest.param(provider, scenario, id=f"{scenario}-{provider}")
        for provider in PROVIDER_IDS
        for scenario in SCENARIO_IDS
        if TABLE[scenario][provider].status == "400"
    ]
