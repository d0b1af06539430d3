"""Local token counting with the BPE files shipped in ``unigate/data`` — never the network."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken.load
import tiktoken.registry

from unigate import tokens

DATA = Path(tokens.__file__).parent / "data"
OPENAI_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"

# Token counts checked once against js-tiktoken 1.0.21 itself (node, js-tiktoken/lite with
# js-tiktoken/ranks/o200k_base and cl100k_base): `new Tiktoken(ranks).encode(s).length`.
KNOWN: list[tuple[str, int, int]] = [  # text, o200k_base, cl100k_base
    ("Hello, world!", 4, 4),
    ("hello world", 2, 2),
    ("The quick brown fox jumps over the lazy dog.", 10, 10),
    ("你好，世界！こんにちは", 5, 8),
    ("def f(x):\n    return x ** 2  # square\n", 14, 14),
    ("   leading and trailing   \n\n", 5, 5),
    ("Ünïcödé façade naïve café 🚀🔥", 12, 18),
    ("1234567890 3.14159", 9, 9),
]
HELLO_IDS = {"o200k_base": [13225, 11, 2375, 0], "cl100k_base": [9906, 11, 1917, 0]}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No network, an empty tiktoken cache, and no encoding loaded yet."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(tokens, "_encodings", {})
    yield cache
    assert list(cache.iterdir()) == [], "tiktoken's cache directory must stay untouched"


@pytest.mark.parametrize("name", tokens.SHIPPED_ENCODINGS)
def test_loads_offline_and_counts_match_js_tiktoken(offline: Path, name: str) -> None:
    assert not tokens.loaded(name)
    column = 1 if name == "o200k_base" else 2
    for row in KNOWN:
        text = row[0]
        assert tokens.count_text(text, name) == row[column], text
    assert tokens.loaded(name)
    assert tokens.get_encoding(name).encode("Hello, world!") == HELLO_IDS[name]


def test_default_encoding_is_o200k(offline: Path) -> None:
    assert tokens.ENCODING == "o200k_base"
    assert tokens.get_encoding().name == "o200k_base"
    assert [tokens.count_text(text) for text, _, _ in KNOWN] == [o200k for _, o200k, _ in KNOWN]


@pytest.mark.parametrize("name", tokens.SHIPPED_ENCODINGS)
def test_shipped_file_is_openais_file(name: str) -> None:
    """Byte-identical to what tiktoken would download: its own expected SHA-256."""
    expected = tokens.published_sha256(name)
    assert expected is not None and len(expected) == 64
    assert hashlib.sha256((DATA / f"{name}.tiktoken").read_bytes()).hexdigest() == expected


@pytest.mark.parametrize("name", tokens.SHIPPED_ENCODINGS)
def test_same_as_tiktokens_own_loader(
    offline: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    ours = tokens.get_encoding(name)
    # tiktoken's own parser over our file gives the same ranks …
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # "" disables tiktoken's cache
    assert ours._mergeable_ranks == tiktoken.load.load_tiktoken_bpe(str(DATA / f"{name}.tiktoken"))
    # … and tiktoken.get_encoding, fed our file through its cache, encodes exactly alike.
    cache = tmp_path / "seeded"
    cache.mkdir()
    key = hashlib.sha1(OPENAI_URL.format(name).encode()).hexdigest()
    (cache / key).write_bytes((DATA / f"{name}.tiktoken").read_bytes())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    theirs = tiktoken.get_encoding(name)
    assert ours._pat_str == theirs._pat_str
    assert ours._special_tokens == theirs._special_tokens
    assert ours.n_vocab == theirs.n_vocab
    corpus = [text for text, _, _ in KNOWN] + [
        "Emoji 👩‍👩‍👧‍👦 and CJK 漢字かなカナ한국어 mixed with Ελληνικά and العربية.",
        "<|endoftext|> is ordinary text here; so is <|endofprompt|>.",
        "x" * 5000 + " " + "ab " * 500,
        "\t\r\n  \u00a0 \u2028 tabs, CRLF and odd spaces\r\n",
        '{"json": [1, 2.5e-3, true, null], "nested": {"k": "v"}}',
    ]
    for text in corpus:
        assert ours.encode_ordinary(text) == theirs.encode_ordinary(text), text


def test_get_encoding_builds_once_under_concurrency(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_build = tokens._build

    def counting_build(name: str) -> tiktoken.Encoding:
        calls.append(name)
        return real_build(name)

    monkeypatch.setattr(tokens, "_build", counting_build)
    start = threading.Barrier(8)
    results: list[tiktoken.Encoding] = []

    def worker() -> None:
        start.wait()
        results.append(tokens.get_encoding())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["o200k_base"]
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_warm_preloads(offline: Path) -> None:
    assert not tokens.loaded()
    tokens.warm()
    assert tokens.loaded()
    assert not tokens.loaded("cl100k_base")


def test_unknown_encoding() -> None:
    with pytest.raises(ValueError, match="unknown encoding 'gpt2'"):
        tokens.get_encoding("gpt2")
    with pytest.raises(ValueError):
        tokens.published_sha256("r50k_base")


def test_missing_or_corrupt_file(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(tokens.BpeDataError, match="not shipped"):
        tokens._load_shipped("https://example.invalid/encodings/p50k_base.tiktoken")
    data = (DATA / "cl100k_base.tiktoken").read_bytes()
    monkeypatch.setattr(tokens, "_shipped_file", lambda blobpath: data.replace(b" 5\n", b" 6\n", 1))
    monkeypatch.setattr(tokens, "_encodings", {})
    with pytest.raises(tokens.BpeDataError, match="sha256"):
        tokens.get_encoding("cl100k_base")


def test_count_text_edge_cases() -> None:
    assert tokens.count_text("") == 0
    assert tokens.count_text("<|endoftext|>") == tokens.count_text("<|endoftext|>")  # no exception
    assert tokens.count_text("<|endoftext|>") > 1  # counted as text, not as one special token


def c(text: str) -> int:
    return tokens.count_text(text)


def test_estimate_prompt_simple_chat() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Hello, world!"},
        ],
    }
    expected = 3 + c("system") + c("You are helpful.") + 3 + c("user") + c("Hello, world!") + 3
    assert tokens.estimate_prompt(body) == expected == 19


def test_estimate_prompt_parts_names_tools() -> None:
    tool_def = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    body = {
        "messages": [
            {
                "role": "user",
                "name": "bob",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                    {"type": "text", "text": "And the weather?"},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 °C"},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}]},
        ],
        "tools": [tool_def],
    }
    expected = (
        (3 + 1 + c("user") + c("bob") + c("What is in this image?") + c("And the weather?"))
        + (3 + c("assistant") + c("get_weather") + c('{"city":"Paris"}'))
        + (3 + c("tool") + c("sunny, 21 °C"))
        + (3 + c("assistant") + c("I can't help with that."))
        + 3
        + c('[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]')
    )
    assert tokens.estimate_prompt(body) == expected


def test_estimate_prompt_prompt_and_input_strings() -> None:
    assert tokens.estimate_prompt({"prompt": "Hello, world!"}) == 4
    assert tokens.estimate_prompt({"input": ["hello world", "Hello, world!", 7]}) == 6
    assert tokens.estimate_prompt({}) == 0
    assert tokens.estimate_prompt({"messages": []}) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"messages": "not a list"},
        {"messages": [None, 3, "x", {"role": 5, "content": {"weird": True}}]},
        {"messages": [{"content": [None, {"type": "text"}, {"type": "text", "text": 5}]}]},
        {"messages": [{"role": "assistant", "tool_calls": "nope", "function_call": 3}]},
        {"messages": [{"role": "assistant", "tool_calls": [None, {"function": None}, {"function": {"name": 1}}]}]},
        {"tools": "nope", "functions": [object()], "prompt": 12, "input": {"a": 1}},
    ],
)
def test_estimate_prompt_never_raises_on_odd_bodies(body: dict[str, Any]) -> None:
    assert tokens.estimate_prompt(body) >= 0


def test_estimate_prompt_survives_circular_tools() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert tokens.estimate_prompt({"tools": [loop]}) == 0


def test_estimate_completion_and_pair() -> None:
    assert tokens.estimate_completion("Hello, world!") == 4
    assert tokens.estimate_completion("") == 0
    body = {"messages": [{"role": "user", "content": "hello world"}]}
    # pieces are joined first: "Hel" + "lo, world!" counts as "Hello, world!"
    assert tokens.estimate(body, ["Hel", "lo, wor", "ld!"]) == (3 + c("user") + 2 + 3, 4)
    assert tokens.estimate(body, iter(())) == (3 + c("user") + 2 + 3, 0)
