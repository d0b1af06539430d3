"""Fixtures of the scenario battery: one fake + gateway per provider for the whole session.

Tests name their provider by parametrising ``h`` indirectly (``cases.cases(scenario)``). The
harnesses themselves live in the session-scoped ``harnesses`` registry, started on first use and
stopped at the end of the session, so the order of the tests never restarts a gateway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.battery.harness import Harness, start


class Harnesses:
    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self._started: dict[str, Harness] = {}

    def get(self, provider: str) -> Harness:
        if provider not in self._started:
            self._started[provider] = self._stack.enter_context(start(provider))
        return self._started[provider]


@pytest.fixture(scope="session")
def harnesses() -> Iterator[Harnesses]:
    with contextlib.ExitStack() as stack:
        yield Harnesses(stack)


@pytest.fixture
def h(request: pytest.FixtureRequest, harnesses: Harnesses) -> Iterator[Harness]:
    """The provider named by the test's indirect parameter, reset for this test; afterwards,
    every scripted behaviour must have been consumed."""
    harness = harnesses.get(str(request.param))
    harness.begin()
    yield harness
    harness.end()


@pytest.fixture(params=[False, True], ids=["json", "sse"])
def stream(request: pytest.FixtureRequest) -> bool:
    """Run a scenario non-streamed and streamed."""
    return bool(request.param)
