"""Local token counting, for when a provider reports no usage (some streams, client disconnects).

Contract:

- Counts use tiktoken's ``o200k_base`` encoding (GPT-4o and later). For other models' tokenizers
  they are an **estimate**; records built from them must be flagged ``tokens_estimated``.
- **No network, ever.** tiktoken normally downloads ``<name>.tiktoken`` from OpenAI on first use;
  unigate ships those files in ``unigate/data/`` (built from the npm package js-tiktoken by
  ``scripts/build_bpe.py``) and builds the :class:`tiktoken.Encoding` itself. The regex
  (``pat_str``) and special tokens come from ``tiktoken_ext.openai_public``, whose constructor is
  run with its ``load_tiktoken_bpe`` bound to a local reader; that reader checks the shipped file
  against the SHA-256 tiktoken expects for OpenAI's file, so the ranks are exactly OpenAI's.
  ``TIKTOKEN_CACHE_DIR`` is never read or written.
- **Lazy and thread-safe.** The encoding loads on first use (~0.3 s, CPU bound) under a lock, so
  concurrent first callers build it once. Call :func:`warm` at start-up off the event loop
  (``await asyncio.to_thread(tokens.warm)``) so no request pays for it.
- The counting functions never raise on odd input: a body of the wrong shape counts what it can.
  Special-token text such as ``<|endoftext|>`` in user content is counted as ordinary text.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import threading
import types
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from typing import Any

import tiktoken

__all__ = [
    "ENCODING",
    "SHIPPED_ENCODINGS",
    "BpeDataError",
    "count_text",
    "estimate",
    "estimate_completion",
    "estimate_prompt",
    "get_encoding",
    "loaded",
    "published_sha256",
    "warm",
]

ENCODING = "o200k_base"
"""The encoding every counting function uses unless told otherwise."""
SHIPPED_ENCODINGS = ("o200k_base", "cl100k_base")
"""Encodings whose rank files are in ``unigate/data/``; any other name is a :class:`ValueError`."""

TOKENS_PER_MESSAGE = 3
"""Chat framing per message (``<|start|>role … <|end|>``), as in OpenAI's counting cookbook."""
TOKENS_PER_NAME = 1
"""Extra framing when a message carries ``name``."""
REPLY_PRIMING = 3
"""Every reply is primed with ``<|start|>assistant<|message|>``."""

_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text", "refusal"})


class BpeDataError(RuntimeError):
    """A shipped rank file is missing or is not the file tiktoken expects (a broken install)."""


_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}


def get_encoding(name: str = ENCODING) -> tiktoken.Encoding:
    """The named encoding, built from the shipped rank file on first use (thread-safe, offline).

    Raises :class:`ValueError` for an encoding unigate does not ship and :class:`BpeDataError`
    when its file is missing or corrupt.
    """
    encoding = _encodings.get(name)
    if encoding is None:
        with _lock:
            encoding = _encodings.get(name)
            if encoding is None:
                encoding = _encodings[name] = _build(name)
    return encoding


def warm(name: str = ENCODING) -> None:
    """Load the encoding now. Blocking (~0.3 s): run it in a thread, not on the event loop."""
    get_encoding(name)


def loaded(name: str = ENCODING) -> bool:
    """True when the encoding is already built, so counting will not block on loading it."""
    return name in _encodings


def count_text(text: str, encoding: str = ENCODING) -> int:
    """Tokens in ``text`` (no chat framing); special-token text counts as ordinary text."""
    if not text:
        return 0
    return len(get_encoding(encoding).encode_ordinary(text))


def estimate_completion(text: str, encoding: str = ENCODING) -> int:
    """Completion tokens for generated ``text`` (content, tool-call arguments, reasoning, joined
    as the caller sees fit): an estimate when the provider's tokenizer is not ``o200k_base``."""
    return count_text(text, encoding)


def estimate(body: Mapping[str, Any], completion_pieces: Iterable[str]) -> tuple[int, int]:
    """``(prompt tokens, completion tokens)`` for a request ``body`` and the text pieces the
    answer streamed so far (joined before counting, so split words count once). The signature
    matches ``unigate.http.recording.EstimateFn``."""
    return estimate_prompt(body), estimate_completion("".join(completion_pieces))


def estimate_prompt(body: Mapping[str, Any], encoding: str = ENCODING) -> int:
    """Estimated prompt tokens of an OpenAI Chat Completions request body.

    Counted, following OpenAI's counting cookbook: for every message, its ``role``, ``name``,
    the text of its ``content`` (a string, or the ``text`` of text/refusal parts), its
    ``refusal`` and the name and arguments of its tool calls, plus :data:`TOKENS_PER_MESSAGE`
    (and :data:`TOKENS_PER_NAME` with a name); then :data:`REPLY_PRIMING` once. Tool and function
    definitions are counted as their compact JSON (providers render them differently, so this is
    rough). A plain string or list of strings in ``prompt`` or ``input`` (legacy completions,
    embeddings) is counted as text. Images, audio and files count nothing: the estimate errs low
    for multimodal requests.
    """
    total = 0
    messages = body.get("messages")
    if isinstance(messages, list | tuple):
        for message in messages:
            if not isinstance(message, Mapping):
                continue
            total += TOKENS_PER_MESSAGE
            if isinstance(message.get("name"), str):
                total += TOKENS_PER_NAME
            total += sum(count_text(text, encoding) for text in _message_texts(message))
        if messages:
            total += REPLY_PRIMING
    for key in ("tools", "functions"):
        definitions = body.get(key)
        if isinstance(definitions, list | tuple) and definitions:
            total += count_text(_compact_json(definitions), encoding)
    for key in ("prompt", "input"):
        value = body.get(key)
        strings = [value] if isinstance(value, str) else value if isinstance(value, list | tuple) else ()
        total += sum(count_text(s, encoding) for s in strings if isinstance(s, str))
    return total


def _message_texts(message: Mapping[str, Any]) -> Iterator[str]:
    for key in ("role", "name", "refusal"):
        value = message.get(key)
        if isinstance(value, str):
            yield value
    content = message.get("content")
    if isinstance(content, str):
        yield content
    elif isinstance(content, list | tuple):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") in _TEXT_PART_TYPES:
                text = part.get("text", part.get("refusal"))
                if isinstance(text, str):
                    yield text
    calls = message.get("tool_calls")
    functions = [c.get("function") for c in calls if isinstance(c, Mapping)] if isinstance(calls, list) else []
    functions.append(message.get("function_call"))
    for function in functions:
        if isinstance(function, Mapping):
            for key in ("name", "arguments"):
                value = function.get(key)
                if isinstance(value, str):
                    yield value


def _compact_json(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # e.g. a circular structure: count nothing rather than fail
        return ""


# -- building an Encoding offline ---------------------------------------------------------------


def _build(name: str) -> tiktoken.Encoding:
    spec = _run_constructor(name, _load_shipped)
    return tiktoken.Encoding(
        name=spec["name"],
        pat_str=spec["pat_str"],
        mergeable_ranks=spec["mergeable_ranks"],
        special_tokens=spec["special_tokens"],
        explicit_n_vocab=spec.get("explicit_n_vocab"),
    )


def _run_constructor(name: str, loader: Any) -> dict[str, Any]:
    """Run ``tiktoken_ext.openai_public``'s constructor for ``name`` with ``load_tiktoken_bpe``
    bound to ``loader``. The function is re-created over a copy of the module's globals, so the
    module itself is never patched and concurrent users of tiktoken are unaffected."""
    if name not in SHIPPED_ENCODINGS:
        raise ValueError(f"unknown encoding {name!r}; unigate ships {', '.join(SHIPPED_ENCODINGS)}")
    module = importlib.import_module("tiktoken_ext.openai_public")
    original = module.ENCODING_CONSTRUCTORS[name]
    scope = {**vars(module), "load_tiktoken_bpe": loader}
    offline = types.FunctionType(
        original.__code__, scope, original.__name__, original.__defaults__, original.__closure__
    )
    spec: dict[str, Any] = offline()
    return spec


def _shipped_file(blobpath: str) -> bytes:
    filename = blobpath.rsplit("/", 1)[-1]
    if filename.removesuffix(".tiktoken") not in SHIPPED_ENCODINGS:
        raise BpeDataError(f"{filename} is not shipped with unigate (and unigate never downloads it)")
    try:
        return (resources.files("unigate") / "data" / filename).read_bytes()
    except OSError as exc:
        raise BpeDataError(f"unigate/data/{filename} is missing from this installation: {exc}") from exc


def _load_shipped(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """Stand-in for ``tiktoken.load.load_tiktoken_bpe``: read the shipped file named like the
    URL's last segment, verify its SHA-256, parse ``<base64 token> <rank>`` lines."""
    data = _shipped_file(blobpath)
    if expected_hash is not None and (actual := hashlib.sha256(data).hexdigest()) != expected_hash:
        raise BpeDataError(f"{blobpath.rsplit('/', 1)[-1]}: sha256 {actual}, tiktoken expects {expected_hash}")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


class _Captured(Exception):
    def __init__(self, expected_hash: str | None) -> None:
        self.expected_hash = expected_hash


def published_sha256(name: str) -> str | None:
    """The SHA-256 tiktoken expects for OpenAI's ``<name>.tiktoken`` (``None`` when it names
    none), read from ``tiktoken_ext.openai_public`` without loading or downloading anything."""

    def capture(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
        raise _Captured(expected_hash)

    try:
        _run_constructor(name, capture)
    except _Captured as captured:
        return captured.expected_hash
    return None
