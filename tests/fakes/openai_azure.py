"""Azure OpenAI's additions to the OpenAI wire shapes, for ``FakeOpenAI(flavor="azure")``
(wire-formats.md §5; https://learn.microsoft.com/en-us/azure/ai-services/openai/concepts/content-filter).

Pure builders, no I/O. Routing (which Azure URL forms the fake answers) lives in
``openai_upstream.py``; this module owns:

* ``route``: the deployment / v1 / Foundry-models path forms and what each requires
  (``api-version`` in the query for the dated forms); ``media_route`` the same for the media
  endpoints (``FakeMedia(azure=True)``): the six deployment routes Azure has (no
  ``/moderations``), and only ``/embeddings`` on the Foundry models endpoint;
* ``decorate_completion``: ``prompt_filter_results`` and per-choice ``content_filter_results``;
* ``decorate_chunks``: the stream Azure sends — a first chunk with ``choices: []``, ``id: ""``,
  ``model: ""``, ``created: 0`` and only ``prompt_filter_results``; then the OpenAI chunks, each
  choice with ``content_filter_results`` (``{}`` on the role and finish chunks);
* the error bodies Azure sends for a bad key, a missing route and an unknown deployment, and
  ``content_filter_error`` (the 400 a filtered prompt gets).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from tests.fakes.openai_wire import JsonObj

SAFE = {"filtered": False, "severity": "safe"}
CATEGORIES = ("hate", "self_harm", "sexual", "violence")

_DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)/chat/completions$")
_V1 = re.compile(r"/openai/v1/chat/completions$")
_MODELS = re.compile(r"/models/chat/completions$")


@dataclass(frozen=True)
class AzureRoute:
    """A recognised Azure chat path: ``deployment`` (from the path, else ``None`` = the body's
    ``model``) and whether the form requires ``api-version``."""

    deployment: str | None
    needs_version: bool


def route(path: str) -> AzureRoute | None:
    """The chat route of ``path`` (no query), or None when Azure would answer 404."""
    path = path.rstrip("/")
    if found := _DEPLOYMENT.search(path):
        return AzureRoute(unquote(found.group(1)), True)
    if _V1.search(path):
        return AzureRoute(None, False)
    if _MODELS.search(path):
        return AzureRoute(None, True)
    return None


MEDIA_ROUTES = (
    "/embeddings",
    "/images/generations",
    "/images/edits",
    "/audio/speech",
    "/audio/transcriptions",
    "/audio/translations",
)
_MEDIA_DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)(/[a-z/]+)$")
_MEDIA_V1 = re.compile(r"/openai/v1(/[a-z/]+)$")
_MODELS_EMBEDDINGS = re.compile(r"/models/embeddings$")


def media_route(path: str) -> tuple[str, AzureRoute] | None:
    """(the media route, its Azure form) of ``path``, or None when Azure would answer 404."""
    path = path.rstrip("/")
    if (found := _MEDIA_DEPLOYMENT.search(path)) and found.group(2) in MEDIA_ROUTES:
        return found.group(2), AzureRoute(unquote(found.group(1)), True)
    if (found := _MEDIA_V1.search(path)) and found.group(1) in MEDIA_ROUTES:
        return found.group(1), AzureRoute(None, False)
    if _MODELS_EMBEDDINGS.search(path):
        return "/embeddings", AzureRoute(None, True)
    return None


def api_version(query: str) -> str | None:
    values = parse_qs(query).get("api-version")
    return values[0] if values else None


def filter_results() -> JsonObj:
    return {name: dict(SAFE) for name in CATEGORIES}


def prompt_filter_results() -> list[JsonObj]:
    return [{"prompt_index": 0, "content_filter_results": filter_results()}]


def decorate_completion(body: JsonObj) -> JsonObj:
    """A ``chat.completion`` as Azure sends it (filter annotations added in place)."""
    body["prompt_filter_results"] = prompt_filter_results()
    for choice in body.get("choices") or ():
        choice["content_filter_results"] = filter_results()
    return body


def filter_only_chunk() -> JsonObj:
    """Azure's first stream chunk, as observed (wire-formats.md §5)."""
    return {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": prompt_filter_results(),
    }


def decorate_chunks(chunks: list[JsonObj]) -> list[JsonObj]:
    """The stream as Azure sends it: the filter-only chunk first, then the chunks with
    ``content_filter_results`` on every choice (full results on content, ``{}`` otherwise)."""
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            delta: Any = choice.get("delta") or {}
            choice["content_filter_results"] = filter_results() if delta.get("content") else {}
    return [filter_only_chunk(), *chunks]


def azure_error(code: str, message: str) -> JsonObj:
    """Azure's common error shape: ``code`` is often a status string, ``type``/``param`` absent."""
    return {"error": {"code": code, "message": message}}


ACCESS_DENIED = azure_error(
    "401",
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your resource.",
)
RESOURCE_NOT_FOUND = azure_error("404", "Resource not found")


def deployment_not_found(deployment: str) -> JsonObj:
    return azure_error(
        "DeploymentNotFound",
        f"The API deployment for this resource does not exist ({deployment}). If you created the "
        "deployment within the last 5 minutes, please wait a moment and try again.",
    )


def content_filter_error(filtered: tuple[str, ...] = ("jailbreak",)) -> JsonObj:
    """The 400 of a prompt the filter refused (wire-formats.md §5; ``content_filter_result`` is
    singular)."""
    result: JsonObj = filter_results()
    result["jailbreak"] = {"filtered": False, "detected": False}
    for name in filtered:
        result[name] = (
            {"filtered": True, "detected": True}
            if name == "jailbreak"
            else {
                "filtered": True,
                "severity": "high",
            }
        )
    return {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
            "management policy. Please modify your prompt and retry.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": result},
        }
    }
