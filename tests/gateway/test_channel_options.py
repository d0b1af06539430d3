"""Per-channel options: headers, body overrides, tools/image switches, http and socks5 proxies."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway.harness import run_gateway

CLIENT = "sk-client-opts-canary-2b7d"
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
HISTORY = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "42"},
    {"role": "user", "content": "and now?"},
]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(strict_models=False) as f:
        yield f


def one_channel(base_url: str, extra: str = "") -> str:
    return f"""
providers:
  - provider: only
    base_url: {base_url}
    api: sk-up
    model: [gpt-4o, {{gpt-4o-mini: mini}}]
{extra}
api_keys:
  - api: {CLIENT}
"""


def test_headers_and_body_overrides(fake: FakeOpenAI) -> None:
    extra = """    preferences:
      headers: {X-Title: unigate-test, HTTP-Referer: "https://example.test"}
      post_body_parameter_overrides:
        temperature: 0.2
        mini: {top_p: 0.5}
        __remove__: [logprobs]
"""
    with run_gateway(one_channel(fake.base_url, extra)) as gw:
        client = gw.client(CLIENT)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}], logprobs=True)
        client.chat.completions.create(model="mini", messages=[{"role": "user", "content": "x"}], temperature=1.5)
    first, second = fake.chat_requests
    assert first.headers["x-title"] == "unigate-test"
    assert first.headers["http-referer"] == "https://example.test"
    assert first.json["temperature"] == 0.2 and "logprobs" not in first.json and "top_p" not in first.json
    assert second.json["temperature"] == 0.2 and second.json["top_p"] == 0.5
    assert second.json["model"] == "gpt-4o-mini"


def test_tools_false_and_image_false_strip_what_the_channel_cannot_take(fake: FakeOpenAI) -> None:
    extra = "    tools: false\n    image: false\n"
    with run_gateway(one_channel(fake.base_url, extra)) as gw:
        gw.client(CLIENT).chat.completions.create(
            model="gpt-4o",
            messages=HISTORY,
            tools=TOOLS,
            tool_choice="auto",  # type: ignore[arg-type]
        )
    sent = fake.chat_requests[0].json
    assert "tools" not in sent and "tool_choice" not in sent
    assert [m["role"] for m in sent["messages"]] == ["user", "user"]
    assert sent["messages"][0]["content"] == [{"type": "text", "text": "look"}]


def test_tools_and_images_pass_by_default(fake: FakeOpenAI) -> None:
    with run_gateway(one_channel(fake.base_url)) as gw:
        gw.client(CLIENT).chat.completions.create(model="gpt-4o", messages=HISTORY, tools=TOOLS)  # type: ignore[arg-type]
    sent = fake.chat_requests[0].json
    assert sent["tools"] == TOOLS and sent["messages"] == HISTORY


def test_http_proxy_is_used(fake: FakeOpenAI) -> None:
    # The fake upstream doubles as the proxy: it sees the absolute-form request target.
    extra = f"    preferences:\n      proxy: http://127.0.0.1:{fake.port}\n"
    with run_gateway(one_channel("http://upstream.invalid/v1", extra)) as gw:
        resp = gw.client(CLIENT).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "p"}])
    assert resp.choices[0].message.content == "echo: p"
    assert fake.chat_requests[0].path == "http://upstream.invalid/v1/chat/completions"


class Socks5Server:
    """A minimal SOCKS5 (no auth, CONNECT) relay on loopback that records each CONNECT target."""

    def __init__(self) -> None:
        self.targets: list[tuple[str, int]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", 0), self.loop
        ).result(5)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, n = await reader.readexactly(2)
        await reader.readexactly(n)
        writer.write(b"\x05\x00")
        _, _cmd, _, atyp = await reader.readexactly(4)
        if atyp == 1:
            host = socket.inet_ntoa(await reader.readexactly(4))
        else:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        self.targets.append((host, port))
        up_reader, up_writer = await asyncio.open_connection(host, port)
        writer.write(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", port))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_socks5_proxy_is_used(fake: FakeOpenAI) -> None:
    socks = Socks5Server()
    try:
        extra = f"    preferences:\n      proxy: socks5://127.0.0.1:{socks.port}\n"
        with run_gateway(one_channel(fake.base_url, extra)) as gw:
            resp = gw.client(CLIENT).chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "s"}]
            )
        assert resp.choices[0].message.content == "echo: s"
        assert socks.targets == [("127.0.0.1", fake.port)]
    finally:
        socks.stop()


def test_global_proxy_is_the_default(fake: FakeOpenAI) -> None:
    text = one_channel("http://upstream.invalid/v1") + f"preferences:\n  proxy: http://127.0.0.1:{fake.port}\n"
    with run_gateway(text) as gw:
        gw.client(CLIENT).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "g"}])
    assert fake.chat_requests[0].path == "http://upstream.invalid/v1/chat/completions"
