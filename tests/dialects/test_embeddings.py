"""OpenAI embeddings checks and encodings (dialects/openai_embed.py) and the Gemini translation
(dialects/gemini_embed.py), against the shapes of wire-formats.md §3 and §9."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types import CreateEmbeddingResponse

from unigate.dialects import gemini_embed, openai_embed
from unigate.errors import BadRequest, UnsupportedFeature, UpstreamProtocolError
from unigate.ir import Usage


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "input"),
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": ["a", ""]}, "input"),
        ({"input": ["a", 1]}, "input"),
        ({"input": [[1, -2]]}, "input"),
        ({"input": [[]]}, "input"),
        ({"input": {"text": "a"}}, "input"),
        ({"input": "a", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "a", "dimensions": 0}, "dimensions"),
        ({"input": "a", "dimensions": True}, "dimensions"),
        ({"input": "a", "dimensions": "8"}, "dimensions"),
    ],
)
def test_bad_requests_name_their_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        openai_embed.check_request(body)
    assert caught.value.param == param


@pytest.mark.parametrize("value", ["a", ["a", "b"], [1, 2, 3], [[1], [2, 3]]])
def test_valid_inputs(value: Any) -> None:
    openai_embed.check_request({"input": value, "encoding_format": "base64", "dimensions": 3})


@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=64))
def test_base64_round_trips_float32(values: list[float]) -> None:
    encoded = openai_embed.to_base64(values)
    assert base64.b64decode(encoded) == struct.pack(f"<{len(values)}f", *values)
    assert openai_embed.from_base64(encoded) == values


def test_from_base64_refuses_garbage() -> None:
    for text in ("not base64!", base64.b64encode(b"abc").decode()):
        with pytest.raises(ValueError):
            openai_embed.from_base64(text)


def test_normalize_packs_or_unpacks_to_the_clients_encoding() -> None:
    data = {"data": [{"object": "embedding", "index": 0, "embedding": [0.5, -1]}], "model": "up", "usage": {}}
    assert openai_embed.normalize_response(data, "alias", "base64") is None
    assert data["model"] == "alias" and data["data"][0]["embedding"] == openai_embed.to_base64([0.5, -1.0])
    usage = openai_embed.normalize_response(
        {**data, "usage": {"prompt_tokens": 4, "total_tokens": 4}, "model": "up"}, None, "float"
    )
    assert usage == Usage(prompt_tokens=4)
    assert data["data"][0]["embedding"] == [0.5, -1.0]
    bad_answers: list[tuple[dict[str, Any], str]] = [
        ({"data": {}}, "float"),
        ({"data": [{"embedding": None}]}, "float"),
        ({"data": [{"embedding": "%%"}]}, "float"),
        ({"data": [{"embedding": ["x"]}]}, "base64"),
    ]
    for bad, encoding in bad_answers:
        with pytest.raises(UpstreamProtocolError):
            openai_embed.normalize_response(bad, None, encoding)


def test_the_openai_response_parses_in_the_sdk() -> None:
    answer = openai_embed.response([[0.5, 0.25], [1.0, 2.0]], "my-alias", "float", None)
    parsed = CreateEmbeddingResponse.model_validate(answer)
    assert parsed.model == "my-alias" and parsed.data[1].index == 1 and parsed.usage.prompt_tokens == 0
    packed = openai_embed.response([[0.5]], "m", "base64", Usage(prompt_tokens=3))
    assert packed["data"][0]["embedding"] == openai_embed.to_base64([0.5]) and packed["usage"]["total_tokens"] == 3


def test_gemini_single_and_batch_requests() -> None:
    single = gemini_embed.encode_request(
        {"model": "x", "input": "Where is Oslo?", "dimensions": 8, "user": "u1"}, "gemini-embedding-001"
    )
    assert (single.batch, single.count) == (False, 1)
    assert single.payload == {"content": {"parts": [{"text": "Where is Oslo?"}]}, "outputDimensionality": 8}
    batch = gemini_embed.encode_request(
        {"input": ["Paris", "Oslo"], "encoding_format": "base64"}, "gemini-embedding-001"
    )
    assert batch.batch and batch.count == 2
    assert batch.payload == {
        "requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "Paris"}]}},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "Oslo"}]}},
        ]
    }


def test_gemini_refuses_what_it_cannot_express() -> None:
    with pytest.raises(UnsupportedFeature) as tokens:
        gemini_embed.encode_request({"input": [[1, 2]]}, "m")
    assert tokens.value.param == "input"
    with pytest.raises(UnsupportedFeature) as unknown:
        gemini_embed.encode_request({"input": "a", "task": "x"}, "m")
    assert unknown.value.param == "task"
    assert gemini_embed.encode_request({"input": "a", "task": None}, "m").count == 1  # null is no value


def test_gemini_responses_decode_in_order() -> None:
    batch = gemini_embed.EmbedRequest(True, {}, 2)
    raw = orjson.dumps({"embeddings": [{"values": [0.1, 2]}, {"values": [3.5]}]})
    assert gemini_embed.decode_response(raw, batch) == ([[0.1, 2.0], [3.5]], None)
    single = gemini_embed.EmbedRequest(False, {}, 1)
    with_usage = orjson.dumps({"embedding": {"values": [1]}, "usageMetadata": {"promptTokenCount": 7}})
    assert gemini_embed.decode_response(with_usage, single) == ([[1.0]], Usage(prompt_tokens=7))
    for bad in (
        b"not json",
        b"[]",
        orjson.dumps({"embeddings": [{"values": [1]}]}),
        orjson.dumps({"embeddings": [{"values": ["a"]}, {}]}),
    ):
        with pytest.raises(UpstreamProtocolError):
            gemini_embed.decode_response(bad, batch)
