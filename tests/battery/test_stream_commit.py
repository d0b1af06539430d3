"""The first content of a stream reaches the client while the upstream pauses.

Found by the battery: ``relay.Relay._rest`` kept the frames peeked before the commit and sent
them with the NEXT upstream read, so a model pausing after its first token showed the client
nothing (fixed in a4052f7). The other scenarios cannot see it — their upstreams never pause.
"""

from __future__ import annotations

import threading

import httpx
import openai
import pytest

from tests.battery.checks import user
from tests.battery.harness import MODEL, Harness
from tests.battery.matrix import PROVIDER_IDS

FIRST_BYTES_WITHIN = 2.0
"""Seconds the client waits for the stream's first chunk while the upstream pauses after its
first content. Loopback delivery takes milliseconds; the bug makes it wait for the upstream."""


@pytest.mark.parametrize("h", PROVIDER_IDS, indirect=True)
def test_first_content_is_not_held_back_while_the_upstream_pauses(h: Harness) -> None:
    gate = threading.Event()
    h.pause_after_content(gate, then="end")
    client = h.client(timeout=httpx.Timeout(30.0, read=FIRST_BYTES_WITHIN))
    try:
        stream = client.chat.completions.create(model=MODEL, messages=user("go"), stream=True)
        seen = ""
        chunks = iter(stream)
        while seen != "part0 part1 ":
            chunk = next(chunks)
            seen += (chunk.choices[0].delta.content or "") if chunk.choices else ""
    finally:
        gate.set()
    with pytest.raises(openai.APIError):  # the upstream then ends without finishing: truncated
        for _ in chunks:
            pass
