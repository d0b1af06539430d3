"""The battery's harnesses for the OpenAI-dialect hosts: Azure OpenAI, Cloudflare Workers AI and
OpenRouter. Each is the OpenAI pass-through harness (``OpenAIHarness``) with its host's own wire
details, so every scenario also checks what is specific to the host:

* **Azure** — the fake in its Azure flavour (deployment URLs with ``api-version``, the ``api-key``
  header, content-filter annotations and the filter-only first stream chunk, which the gateway
  must fold away: the battery's stream checks require one id on every chunk). The upstream model
  is read from the deployment in the path; errors are Azure's ``{"error": {"code": "<status>",
  "message"}}`` bodies.
* **Cloudflare** — ``cf_account_id`` channels; the fake stands in for ``api.cloudflare.com``
  (``base_url`` overrides only the host) and answers on
  ``/client/v4/accounts/battery-account/ai/v1/chat/completions``; models are ``@cf/…`` names;
  errors are Cloudflare's envelope (``{"success": false, "errors": [{"code", "message"}]}``; the
  5xx codes are stand-ins: Cloudflare documents none). An in-band stream error keeps OpenAI's
  form (Cloudflare's is not documented).
* **OpenRouter** — ``engine: openrouter`` with attribution headers in ``preferences.headers``;
  reasoning comes in OpenRouter's ``reasoning`` field, which the gateway renames to
  ``reasoning_content`` (the battery's reasoning scenario reads only the latter).

Every request is also checked for the host's URL and headers (``sent()`` raises on a request
that went elsewhere), so a scenario passing means the host's routing held throughout.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from tests.battery.harness import (
    CLIENT_KEY,
    ERROR_MESSAGE,
    KEYS,
    MODEL,
    RETRY_AFTER,
    SOLO,
    Channel,
    ErrorKind,
    Harness,
    OpenAIHarness,
    Say,
    _serve,
)
from tests.fakes import openai_azure
from tests.fakes.loopback import RecordedRequest
from tests.fakes.openai_upstream import Fail, FakeOpenAI, RawStream, Reply
from unigate.providers.azure import DEFAULT_API_VERSION

AZURE_MODELS: Mapping[Channel, str] = {"a": "gpt-4o-prod", "b": "gpt-4o-mini-prod", "solo": "gpt-4.1-prod"}
CLOUDFLARE_MODELS: Mapping[Channel, str] = {
    "a": "@cf/meta/llama-3.1-8b-instruct",
    "b": "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
    "solo": "@cf/qwen/qwen2.5-coder-32b-instruct",
}
OPENROUTER_MODELS: Mapping[Channel, str] = {
    "a": "openai/gpt-4o",
    "b": "anthropic/claude-sonnet-4.5",
    "solo": "meta-llama/llama-3.3-70b-instruct",
}
CF_ACCOUNT = "battery-account"
CF_PATH = f"/client/v4/accounts/{CF_ACCOUNT}/ai/v1/chat/completions"
REFERER = "https://battery.example"
TITLE = "unigate battery"


def config_text(provider: str, head: str, models: Mapping[Channel, str]) -> str:
    """The api.yaml of a harness (``harness.config_text`` with the model names quoted: ``@cf/…``
    cannot start a plain YAML scalar)."""
    blocks = []
    for ch in ("a", "b", "solo"):
        alias = SOLO if ch == "solo" else MODEL
        api = f"    api: [{', '.join(KEYS[ch])}]\n"
        blocks.append(
            f"  - provider: {provider}-{ch}\n{head}{api}    model:\n      - {json.dumps(models[ch])}: {alias}\n"
        )
    return "providers:\n" + "".join(blocks) + f"api_keys:\n  - api: {CLIENT_KEY}\n    model: [all]\n"


class AzureHarness(OpenAIHarness):
    """Azure OpenAI: the model is the deployment in the path; the key is the ``api-key`` header."""

    def _model_of(self, req: RecordedRequest) -> str | None:
        found = openai_azure.route(req.path) if req.method == "POST" else None
        if found is None:
            return None
        assert found.deployment is not None, f"not the deployment form: {req.path}"
        assert req.query == f"api-version={DEFAULT_API_VERSION}", req.query
        assert "authorization" not in req.headers
        return found.deployment

    def _credential(self, req: RecordedRequest) -> str | None:
        return req.headers.get("api-key")

    def _error(self, kind: ErrorKind) -> object:
        status = self.status_of(kind)
        headers = {"retry-after": str(RETRY_AFTER)} if kind == "rate_limited" else {}
        return Fail(status, body=openai_azure.azure_error(str(status), ERROR_MESSAGE), headers=headers)


def cloudflare_envelope(code: int, message: str) -> dict[str, Any]:
    return {"result": None, "success": False, "errors": [{"code": code, "message": message}], "messages": []}


_CLOUDFLARE_CODES: Mapping[ErrorKind, int] = {
    "bad_request": 5004,  # invalid data
    "unauthorized": 10000,  # authentication error
    "forbidden": 5018,  # not allowed
    "rate_limited": 3040,  # out of capacity: retried elsewhere
    "server": 3043,  # stand-in
    "overloaded": 3043,  # stand-in
}


class CloudflareHarness(OpenAIHarness):
    """Workers AI's OpenAI-compatible endpoint; errors in Cloudflare's envelope."""

    def _model_of(self, req: RecordedRequest) -> str | None:
        model = super()._model_of(req)
        if model is not None:
            assert req.path == CF_PATH, req.path
        return model

    def _error(self, kind: ErrorKind) -> object:
        headers = {"retry-after": str(RETRY_AFTER)} if kind == "rate_limited" else {}
        body = cloudflare_envelope(_CLOUDFLARE_CODES[kind], ERROR_MESSAGE)
        return Fail(self.status_of(kind), body=body, headers=headers)


class OpenRouterHarness(OpenAIHarness):
    """OpenRouter: reasoning in its ``reasoning`` field; attribution headers on every request."""

    def _model_of(self, req: RecordedRequest) -> str | None:
        model = super()._model_of(req)
        if model is not None:
            assert (req.headers.get("http-referer"), req.headers.get("x-openrouter-title")) == (REFERER, TITLE)
        return model

    def _answer(self, answer: Say, stream: bool) -> object:
        native = super()._answer(answer, stream)
        if answer.reasoning is None:
            return native
        if isinstance(native, Reply):
            return Reply(
                text=native.text,
                tool_calls=native.tool_calls,
                reasoning=native.reasoning,
                finish_reason=native.finish_reason,
                usage=native.usage,
                reasoning_field="reasoning",
            )
        return _reasoning_renamed(native)


def _reasoning_renamed(native: object) -> object:
    """The same wire answer with ``reasoning_content`` spelled ``reasoning`` (OpenRouter's name)."""
    if isinstance(native, Fail) and isinstance(native.body, Mapping):
        body = json.loads(json.dumps(native.body).replace('"reasoning_content"', '"reasoning"'))
        return Fail(native.status, body=body)
    assert isinstance(native, RawStream)
    pieces = [p.replace(b'"reasoning_content"', b'"reasoning"') for p in native.pieces]
    return RawStream(pieces)


@contextlib.contextmanager
def start_azure() -> Iterator[Harness]:
    with FakeOpenAI(models=AZURE_MODELS.values(), flavor="azure") as fake:
        harness = AzureHarness("azure", "openai", fake, AZURE_MODELS, KEYS, 503)
        head = f"    engine: azure\n    base_url: {fake.url}\n"
        with _serve(harness, config_text("azure", head, AZURE_MODELS)) as h:
            yield h


@contextlib.contextmanager
def start_cloudflare() -> Iterator[Harness]:
    with FakeOpenAI(models=CLOUDFLARE_MODELS.values()) as fake:
        harness = CloudflareHarness("cloudflare", "openai", fake, CLOUDFLARE_MODELS, KEYS, 503)
        head = f"    cf_account_id: {CF_ACCOUNT}\n    base_url: {fake.url}\n"
        with _serve(harness, config_text("cloudflare", head, CLOUDFLARE_MODELS)) as h:
            yield h


@contextlib.contextmanager
def start_openrouter() -> Iterator[Harness]:
    with FakeOpenAI(models=OPENROUTER_MODELS.values()) as fake:
        harness = OpenRouterHarness("openrouter", "openai", fake, OPENROUTER_MODELS, KEYS, 503)
        head = (
            f"    engine: openrouter\n    base_url: {fake.base_url}\n    preferences:\n      headers:\n"
            f"        HTTP-Referer: {REFERER}\n        X-OpenRouter-Title: {TITLE}\n"
        )
        with _serve(harness, config_text("openrouter", head, OPENROUTER_MODELS)) as h:
            yield h
