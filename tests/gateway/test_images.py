"""Image URLs: fetched and inlined only for channels that opt in, never from internal hosts."""

from __future__ import annotations

import base64
import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway.harness import run_gateway
from unigate.upstream import is_internal

CLIENT = "sk-client-img-canary-6e21"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class _Images(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        if self.path == "/cat.png":
            self._send(200, "image/png", PNG)
        elif self.path == "/hop":
            self.send_response(302)
            self.send_header("location", "/cat.png")
            self.send_header("content-length", "0")
            self.end_headers()
        elif self.path == "/page":
            self._send(200, "text/html", b"<html></html>")
        else:
            self._send(404, "text/plain", b"no")

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def images() -> Iterator[str]:
    _Images.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def config(gem: FakeGemini, prefs: str) -> str:
    return f"""
providers:
  - provider: gem
    engine: gemini
    base_url: {gem.url}/v1beta
    api: gk
    model: [gemini-2.5-flash]
    preferences: {{{prefs}}}
api_keys:
  - api: {CLIENT}
"""


def ask(gw: object, url: str) -> object:
    client = gw.client(CLIENT)  # type: ignore[attr-defined]
    return client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "what is it"}, {"type": "image_url", "image_url": {"url": url}}],
            }
        ],
    )


def test_opted_in_channel_fetches_and_inlines(images: str) -> None:
    with (
        FakeGemini(api_key="gk") as gem,
        run_gateway(config(gem, "fetch_images: true, fetch_images_allow_private: true")) as gw,
    ):
        ask(gw, images + "/hop")
        parts = gem.generate_requests[0].json["contents"][0]["parts"]
    inline = [p["inlineData"] for p in parts if "inlineData" in p]
    assert inline == [{"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}]
    assert _Images.hits == ["/hop", "/cat.png"]


def test_internal_targets_are_refused_before_connecting(images: str) -> None:
    with FakeGemini(api_key="gk") as gem, run_gateway(config(gem, "fetch_images: true")) as gw:
        for url in (images + "/cat.png", "http://localhost:1/x.png", "http://169.254.169.254/latest"):
            with pytest.raises(openai.BadRequestError) as info:
                ask(gw, url)
            assert info.value.code == "image_url_refused"
        with pytest.raises(openai.BadRequestError):
            ask(gw, "file:///etc/passwd")
    assert _Images.hits == [] and gem.generate_requests == []


def test_non_images_and_failures_are_client_errors(images: str) -> None:
    with (
        FakeGemini(api_key="gk") as gem,
        run_gateway(config(gem, "fetch_images: true, fetch_images_allow_private: true")) as gw,
    ):
        for path in ("/page", "/missing"):
            with pytest.raises(openai.BadRequestError) as info:
                ask(gw, images + path)
            assert info.value.code == "image_fetch_failed"
    assert gem.generate_requests == []


def test_without_opt_in_a_url_gemini_cannot_take_is_a_clear_400(images: str) -> None:
    with FakeGemini(api_key="gk") as gem, run_gateway(config(gem, "")) as gw:
        with pytest.raises(openai.BadRequestError) as info:
            ask(gw, images + "/cat.png")
        assert "image" in info.value.message.lower()
    assert _Images.hits == [] and gem.generate_requests == []


@pytest.mark.parametrize(
    ("address", "internal"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("0.0.0.0", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("fe80::1", True),
        ("fd00::1", True),
        ("8.8.8.8", False),
        ("2001:4860:4860::8888", False),
    ],
)
def test_internal_address_predicate(address: str, internal: bool) -> None:
    assert is_internal(ipaddress.ip_address(address)) is internal
