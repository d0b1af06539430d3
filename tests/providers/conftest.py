"""Provider tests run their coroutines on asyncio (the Vertex token cache uses asyncio tasks)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
