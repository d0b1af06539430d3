"""The matrix is complete and every cell is backed: a ``yes``/``bug`` cell by a scenario test,
a ``400`` cell by a refusal request, and nothing is claimed that no test exercises."""

from __future__ import annotations

import importlib

from tests.battery.cases import USED, refusal_cases
from tests.battery.matrix import PROVIDER_IDS, SCENARIO_IDS, SCENARIOS, TABLE, providers_with

SCENARIO_MODULES = ("test_messages", "test_tools", "test_params", "test_errors")


def test_every_cell_is_filled_in() -> None:
    assert len(set(SCENARIO_IDS)) == len(SCENARIOS)
    assert set(TABLE) == set(SCENARIO_IDS)
    for scenario, row in TABLE.items():
        assert set(row) == set(PROVIDER_IDS), scenario
        for provider, cell in row.items():
            assert cell.status in ("yes", "400", "n/a", "bug"), (scenario, provider)
            if cell.status != "yes":
                assert cell.note, f"{scenario}/{provider}: a {cell.status} cell needs its reason"


def test_every_supported_cell_has_a_scenario_test() -> None:
    for name in SCENARIO_MODULES:
        importlib.import_module(f"tests.battery.{name}")
    claimed = {s for s in SCENARIO_IDS if providers_with(s, "yes", "bug")}
    assert claimed - USED == set(), "scenarios marked yes without a test"
    assert set(SCENARIO_IDS) >= USED


def test_every_refused_cell_has_a_refusal_request() -> None:
    from tests.battery.test_refusals import REFUSALS

    refused = {s for s in SCENARIO_IDS if providers_with(s, "400")}
    assert set(REFUSALS) == refused
    assert len(refusal_cases()) == sum(len(providers_with(s, "400")) for s in SCENARIO_IDS)


def test_a_refused_scenario_is_tested_where_it_works() -> None:
    """A scenario refused somewhere is a real feature elsewhere (else the column says nothing)."""
    for scenario in SCENARIO_IDS:
        if providers_with(scenario, "400"):
            assert providers_with(scenario, "yes"), scenario
