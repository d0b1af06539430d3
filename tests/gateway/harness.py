"""Run a real unigate (uvicorn + the real app) on a loopback port in a background thread.

Tests drive it with the official synchronous ``openai`` SDK, exactly as users do. The server
runs in its own thread and event loop; fake upstreams run in theirs.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import openai
import uvicorn

from unigate.app import create_app
from unigate.config.load import load_text


class RunningGateway:
    def __init__(self, server: uvicorn.Server, thread: threading.Thread, port: int) -> None:
        self.server = server
        self.thread = thread
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = self.url + "/v1"

    @property
    def app(self) -> Any:
        return self.server.config.app

    def client(self, key: str, **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 30)
        return openai.OpenAI(base_url=self.base_url, api_key=key, **kwargs)


@contextmanager
def run_gateway(
    config_text: str,
    *,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], float] | None = None,
) -> Iterator[RunningGateway]:
    """Start unigate on ``config_text``; stop it (and wait) on exit."""
    # Statistics are off unless a test asks for them (they would write ./data/stats.db).
    env = {"DISABLE_DATABASE": "true", **(env or {})}
    loaded = load_text(config_text, source="test.yaml", env=env)
    app = create_app(loaded, env=env, clock=clock)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, loop="asyncio", http="httptools", lifespan="on", access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("unigate did not start")
        time.sleep(0.005)
    try:
        yield RunningGateway(server, thread, port)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
