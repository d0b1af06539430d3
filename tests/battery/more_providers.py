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
