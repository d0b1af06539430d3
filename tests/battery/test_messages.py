"""Battery: what a conversation becomes upstream — text, system, turns, images, audio."""

from __future__ import annotations

from typing import Any

import pytest

from tests.battery.cases import cases
from tests.battery.checks import PNG, ask, user
from tests.battery.harness import KEYS, Harness

ANTHROPIC_VERSION = "2023-06-01"
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


@pytest.mark.parametrize("h", cases("text"), indirect=True)
def test_text(h: Harness, stream: bool) -> None:
    got = ask(h, stream, user("Hello battery"))
    assert got.text == "echo: Hello battery"
    assert got.finish == "stop"
    assert got.completion.id
    assert got.message.tool_calls in (None, [])
    if not stream:
        assert got.completion.usage is not None and got.completion.usage.completion_tokens > 0

    [sent] = h.sent()
    body = sent.json
    assert sent.channel == "a"
    if h.family == "openai":
        assert body["messages"] == user("Hello battery")
        assert body["model"] == h.models["a"]
        assert bool(body.get("stream")) is stream
    elif h.family == "anthropic":
        assert body["messages"] == [{"role": "user", "content": [text_block("Hello battery")]}]
        assert isinstance(body["max_tokens"], int) and body["max_tokens"] > 0
        if h.name == "bedrock-claude":  # the model and the stream mode are in the URL
            assert "model" not in body and "stream" not in body
            assert body["anthropic_version"] == BEDROCK_ANTHROPIC_VERSION
            assert sent.path.endswith("/invoke-with-response-stream" if stream else "/invoke")
        elif h.name == "vertex-claude":
            assert body["stream"] is stream
            assert "model" not in body and body["anthropic_version"] == VERTEX_ANTHROPIC_VERSION
            assert sent.path.endswith(":streamRawPredict" if stream else ":rawPredict")
        else:
            assert body["stream"] is stream
            assert body["model"] == h.models["a"]
            assert sent.headers["anthropic-version"] == ANTHROPIC_VERSION
    elif h.family == "cohere":
        assert body["messages"] == user("Hello battery")
        assert body["model"] == h.models["a"] and body["stream"] is stream
        assert sent.path == "/v2/chat"
    elif h.family == "bedrock":
        assert body["messages"] == [{"role": "user", "content": [{"text": "Hello battery"}]}]
        assert "modelId" not in body and "stream" not in body
        assert sent.path.endswith("/converse-stream" if stream else "/converse")
    else:
        assert body["contents"] == [{"role": "user", "parts": [{"text": "Hello battery"}]}]
        assert sent.path.endswith(":streamGenerateContent" if stream else ":generateContent")
        assert ("alt=sse" in sent.query) is stream
    # The channel's own credential, in the provider's header; never the client's key.
    if h.keys["a"]:
        assert sent.credential in KEYS["a"]
    elif h.name.startswith("bedrock-"):
        assert sent.credential is not None and sent.credential.startswith("AKIA")  # the SigV4 access key id
    else:
        assert sent.credential is not None and sent.credential.startswith("ya29.")
    assert "battery-client" not in str(sent.headers)


@pytest.mark.parametrize("h", cases("system"), indirect=True)
def test_system_and_developer(h: Harness, stream: bool) -> None:
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "Bonjour"},
    ]
    got = ask(h, stream, messages)
    assert got.text == "echo: Bonjour"

    body = h.last()
    if h.family == "openai":
        assert body["messages"] == messages
    elif h.family == "anthropic":
        assert body["system"] == [text_block("Be terse."), text_block("Answer in French.")]
        assert body["messages"] == [{"role": "user", "content": [text_block("Bonjour")]}]
    elif h.family == "cohere":  # one leading system message
        system = {"role": "system", "content": [text_block("Be terse."), text_block("Answer in French.")]}
        assert body["messages"] == [system, {"role": "user", "content": "Bonjour"}]
    elif h.family == "bedrock":
        assert body["system"] == [{"text": "Be terse."}, {"text": "Answer in French."}]
        assert body["messages"] == [{"role": "user", "content": [{"text": "Bonjour"}]}]
    else:
        assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}, {"text": "Answer in French."}]}
        assert body["contents"] == [{"role": "user", "parts": [{"text": "Bonjour"}]}]


@pytest.mark.parametrize("h", cases("multi_turn"), indirect=True)
def test_multi_turn_merges_same_role(h: Harness, stream: bool) -> None:
    messages = [
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "three"},
        {"role": "user", "content": "four"},
    ]
    got = ask(h, stream, messages)
    assert got.text == "echo: four"

    body = h.last()
    if h.family == "openai":
        assert body["messages"] == messages
    elif h.family == "anthropic":
        assert body["messages"] == [
            {"role": "user", "content": [text_block("one"), text_block("two")]},
            {"role": "assistant", "content": [text_block("three")]},
            {"role": "user", "content": [text_block("four")]},
        ]
    elif h.family == "cohere":  # Cohere takes consecutive same-role messages as they are
        assert body["messages"] == messages
    elif h.family == "bedrock":
        assert body["messages"] == [
            {"role": "user", "content": [{"text": "one"}, {"text": "two"}]},
            {"role": "assistant", "content": [{"text": "three"}]},
            {"role": "user", "content": [{"text": "four"}]},
        ]
    else:
        assert body["contents"] == [
            {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
            {"role": "model", "parts": [{"text": "three"}]},
            {"role": "user", "parts": [{"text": "four"}]},
        ]


@pytest.mark.parametrize("h", cases("image"), indirect=True)
def test_image_data_uri(h: Harness, stream: bool) -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
    ]
    got = ask(h, stream, [{"role": "user", "content": content}])
    assert got.text == "echo: what is this"

    body = h.last()
    if h.family == "openai":
        assert body["messages"][0]["content"] == content
    elif h.family == "anthropic":
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
        assert body["messages"] == [{"role": "user", "content": [text_block("what is this"), image]}]
    elif h.family == "cohere":
        assert body["messages"] == [{"role": "user", "content": content}]
    elif h.family == "bedrock":
        image = {"image": {"format": "png", "source": {"bytes": PNG}}}
        assert body["messages"] == [{"role": "user", "content": [{"text": "what is this"}, image]}]
    else:
        parts = [{"text": "what is this"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]
        assert body["contents"] == [{"role": "user", "parts": parts}]


@pytest.mark.parametrize("h", cases("image_url"), indirect=True)
def test_image_https_url(h: Harness, stream: bool) -> None:
    url = "https://example.com/cat.png"
    content = [{"type": "text", "text": "and this"}, {"type": "image_url", "image_url": {"url": url}}]
    got = ask(h, stream, [{"role": "user", "content": content}])
    assert got.text == "echo: and this"

    body = h.last()
    if h.family == "openai":
        assert body["messages"][0]["content"] == content
    elif h.family == "cohere":  # Cohere fetches web URLs itself
        assert body["messages"] == [{"role": "user", "content": content}]
    else:
        assert h.family == "anthropic", "a yes cell without a native expectation"
        image = {"type": "image", "source": {"type": "url", "url": url}}
        assert body["messages"][0]["content"] == [text_block("and this"), image]


@pytest.mark.parametrize("h", cases("audio"), indirect=True)
def test_audio_input(h: Harness, stream: bool) -> None:
    wav = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="
    content = [
        {"type": "text", "text": "transcribe"},
        {"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}},
    ]
    got = ask(h, stream, [{"role": "user", "content": content}])
    assert got.text == "echo: transcribe"

    body = h.last()
    if h.family == "openai":
        assert body["messages"][0]["content"] == content
    elif h.family == "bedrock":
        audio = {"audio": {"format": "wav", "source": {"bytes": wav}}}
        assert body["messages"] == [{"role": "user", "content": [{"text": "transcribe"}, audio]}]
    else:
        assert h.family == "gemini", "a yes cell without a native expectation"
        parts = [{"text": "transcribe"}, {"inlineData": {"mimeType": "audio/wav", "data": wav}}]
        assert body["contents"] == [{"role": "user", "parts": parts}]
