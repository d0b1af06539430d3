"""OpenAI embeddings ⇄ Cohere ``/v2/embed``: the request both ways and the answer's checks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from unigate.dialects import cohere_embed
from unigate.errors import UnsupportedFeature, UpstreamProtocolError
from unigate.ir import Usage

MODEL = "embed-v4.0"


def test_strings_become_texts_with_the_default_input_type() -> None:
    one = cohere_embed.encode_request({"model": "alias", "input": "Paris", "encoding_format": "base64"}, MODEL)
    assert one.count == 1
    assert one.payload == {
        "model": MODEL,
        "texts": ["Paris"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    many = cohere_embed.encode_request({"model": "m", "input": ["a", "b c"], "dimensions": 256, "user": "u"}, MODEL)
    assert many.count == 2 and many.payload["texts"] == ["a", "b c"] and many.payload["output_dimension"] == 256
    assert "user" not in many.payload


def test_the_client_may_choose_cohere_input_type() -> None:
    query = cohere_embed.encode_request({"model": "m", "input": "q", "input_type": "search_query"}, MODEL)
    assert query.payload["input_type"] == "search_query"
    with pytest.raises(UnsupportedFeature) as caught:
        cohere_embed.encode_request({"model": "m", "input": "q", "input_type": "image"}, MODEL)
    assert caught.value.param == "input_type"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "input": [[1, 2, 3]]}, "input"),
        ({"model": "m", "input": [1, 2, 3]}, "input"),
        ({"model": "m", "input": "x", "truncate": "END"}, "truncate"),
    ],
)
def test_what_cohere_cannot_express_is_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedFeature) as caught:
        cohere_embed.encode_request(body, MODEL)
    assert caught.value.param == param


def _answer(floats: Any, meta: Any = None) -> bytes:
    body: dict[str, Any] = {"id": "e1", "embeddings": {"float": floats}, "response_type": "embeddings_by_type"}
    if meta is not None:
        body["meta"] = meta
    return orjson.dumps(body)


def test_the_answer_gives_vectors_in_order_and_billed_tokens() -> None:
    request = cohere_embed.encode_request({"model": "m", "input": ["a", "b"]}, MODEL)
    raw = _answer([[0.5, -1], [2, 0.25]], {"billed_units": {"input_tokens": 7.0}})
    vectors, usage = cohere_embed.decode_response(raw, request)
    assert vectors == [[0.5, -1.0], [2.0, 0.25]] and usage == Usage(prompt_tokens=7)
    assert cohere_embed.decode_response(_answer([[1], [2]]), request)[1] is None


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        orjson.dumps({"embeddings": {"int8": [[1], [2]]}}),
        _answer([[1.0]]),
        _answer([[1.0], ["x"]]),
        _answer([[1.0], [True]]),
    ],
    ids=["not-json", "no-float", "too-few", "text-value", "bool-value"],
)
def test_a_bad_answer_is_the_upstreams_fault(raw: bytes) -> None:
    request = cohere_embed.encode_request({"model": "m", "input": ["a", "b"]}, MODEL)
    with pytest.raises(UpstreamProtocolError):
        cohere_embed.decode_response(raw, request)
