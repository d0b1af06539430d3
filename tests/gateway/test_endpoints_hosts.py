"""The media endpoints on hosts other than plain OpenAI-compatible ones, through a real unigate
driven by the official ``openai`` SDK against loopback fakes: Azure OpenAI (deployment, v1 and
Foundry-models URL forms), Cloudflare Workers AI embeddings, Cohere embeddings (translated to
``/v2/embed``); failover across engines; usage and cost in the records.

The first tests check the fakes themselves with the official SDKs (``openai.AzureOpenAI``,
``cohere.ClientV2``), so the gateway tests run against faithful upstreams."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cohere
import httpx
import openai
import pytest

from tests.fakes.cohere_upstream import CFail, FakeCohere
from tests.fakes.media_upstream import FakeMedia, MFail
from tests.fakes.media_wire import speech_bytes, vector
from tests.gateway.harness import RunningGateway, run_gateway
from tests.gateway.test_stats import wait_until

CLIENT = "sk-client-hosts-canary-5e61"
AZ_KEY = "az-key-hosts-canary-93ab"
CF_TOKEN = "cf-token-hosts-canary-17cd"
CO_KEY = "co-key-hosts-canary-4b2f"
OA_KEY = "sk-oa-hosts-canary-8d0e"
ACCOUNT = "acct-0123"
VERSION = "2024-10-21"
CF_MODEL = "@cf/baai/bge-m3"
Fakes = tuple[FakeMedia, FakeMedia, FakeCohere, FakeMedia]


def config(az: FakeMedia, cf: FakeMedia, co: FakeCohere, oa: FakeMedia) -> str:
    return f"""
providers:
  - provider: az
    engine: azure
    base_url: {az.url}
    api: {AZ_KEY}
    model:
      - emb-dep: az-embed
      - image-dep: az-image
      - tts-dep: az-tts
      - whisper-dep: az-whisper
      - omni-moderation-latest: az-moderation
      - emb-dep: shared-embed
      - tts-dep: shared-tts
  - provider: azv1
    engine: azure
    base_url: {az.url}/openai/v1
    api: {AZ_KEY}
    model: [v1-dep]
  - provider: foundry
    engine: azure
    base_url: {az.url}/models
    api: {AZ_KEY}
    model: [foundry-embed, foundry-tts]
  - provider: co
    engine: cohere
    base_url: {co.url}
    api: {CO_KEY}
    model:
      - embed-v4.0
      - embed-v4.0: shared-embed
  - provider: cf
    engine: cloudflare
    cf_account_id: {ACCOUNT}
    base_url: {cf.url}
    api: {CF_TOKEN}
    model:
      - "{CF_MODEL}"
      - "{CF_MODEL}": shared-embed
      - "@cf/black-forest-labs/flux-1-schnell"
  - provider: oa
    base_url: {oa.base_url}
    api: {OA_KEY}
    model:
      - tts-1: shared-tts
api_keys:
  - api: {CLIENT}
    role: admin
preferences:
  cooldown_period: 0
  model_price: {{shared-embed: "2,0", embed-v4.0: "1,0", default: "1,1"}}
"""


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with (
        FakeMedia(api_key=AZ_KEY, azure=True) as az,
        FakeMedia(api_key=CF_TOKEN, float_only=True) as cf,
        FakeCohere(models=("embed-v4.0",), api_key=CO_KEY) as co,
        FakeMedia(api_key=OA_KEY) as oa,
    ):
        yield az, cf, co, oa
        assert az.errors == cf.errors == co.errors == oa.errors == []


@pytest.fixture
def gw(fakes: Fakes) -> Iterator[RunningGateway]:
    with run_gateway(config(*fakes)) as gateway:
        yield gateway


@pytest.fixture
def client(gw: RunningGateway) -> openai.OpenAI:
    return gw.client(CLIENT)


# -- the fakes are faithful -------------------------------------------------------------------


def test_the_azure_sdk_reaches_every_media_deployment_route_of_the_fake(fakes: Fakes) -> None:
    az = fakes[0]
    sdk = openai.AzureOpenAI(azure_endpoint=az.url, api_key=AZ_KEY, api_version=VERSION, max_retries=0, timeout=10)
    made = sdk.embeddings.create(model="emb-dep", input=["Paris", "Oslo x"])
    assert [d.embedding for d in made.data] == [vector("Paris", 4), vector("Oslo x", 4)]
    sent = az.requests[-1]
    assert sent.path == "/openai/deployments/emb-dep/embeddings" and f"api-version={VERSION}" in sent.query
    assert sent.headers["api-key"] == AZ_KEY
    assert sdk.audio.speech.create(model="tts-dep", voice="alloy", input="Hei").content == speech_bytes("Hei")
    heard = sdk.audio.transcriptions.create(model="whisper-dep", file=("a.wav", b"RIFF1234"))
    assert heard.text == "heard 8 bytes of a.wav" and az.requests[-1].path.endswith("/whisper-dep/audio/transcriptions")
    assert sdk.images.edit(model="image-dep", image=("i.png", b"png"), prompt="snow").data
    with pytest.raises(openai.NotFoundError):  # Azure has no moderations
        sdk.moderations.create(model="omni-moderation-latest", input="x")
    versionless = httpx.post(
        az.url + "/openai/deployments/emb-dep/embeddings", json={"input": "x"}, headers={"api-key": AZ_KEY}
    )
    assert versionless.status_code == 404
    wrong = openai.AzureOpenAI(azure_endpoint=az.url, api_key="nope", api_version=VERSION, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.embeddings.create(model="emb-dep", input="x")


def test_the_cohere_sdk_embeds_on_the_fake(fakes: Fakes) -> None:
    co = fakes[2]
    sdk = cohere.ClientV2(api_key=CO_KEY, base_url=co.url)
    answer = sdk.embed(model="embed-v4.0", input_type="search_document", texts=["a b", "c"], embedding_types=["float"])
    assert answer.embeddings.float_ == [vector("a b", 4), vector("c", 4)]
    assert answer.meta is not None and answer.meta.billed_units is not None
    assert answer.meta.billed_units.input_tokens == 3
    co.script(CFail(429))
    with pytest.raises(cohere.TooManyRequestsError):
        sdk.embed(
            model="embed-v4.0",
            input_type="search_query",
            texts=["x"],
            embedding_types=["float"],
            request_options={"max_retries": 0},  # the SDK retries a 429 by itself
        )
    with pytest.raises(cohere.BadRequestError):
        sdk.embed(model="embed-v4.0", input_type="nonsense", texts=["x"], embedding_types=["float"])


# -- Azure ------------------------------------------------------------------------------------


def test_azure_deployment_form_serves_every_endpoint_but_moderations(fakes: Fakes, client: openai.OpenAI) -> None:
    az = fakes[0]
    raw = client.embeddings.with_raw_response.create(model="az-embed", input="Oslo", dimensions=3)
    made = raw.parse()
    assert made.data[0].embedding == vector("Oslo", 3) and made.model == "az-embed"
    assert raw.headers["x-unigate-channel"] == "az"
    sent = az.requests[-1]
    assert sent.path == "/openai/deployments/emb-dep/embeddings" and sent.query == f"api-version={VERSION}"
    assert sent.headers["api-key"] == AZ_KEY and "authorization" not in sent.headers
    assert sent.json["model"] == "emb-dep" and sent.json["dimensions"] == 3
    picture = client.images.generate(model="az-image", prompt="fjord")
    assert picture.data and az.requests[-1].path == "/openai/deployments/image-dep/images/generations"
    assert client.images.edit(model="az-image", image=("i.png", b"png"), prompt="snow").data
    assert az.requests[-1].path == "/openai/deployments/image-dep/images/edits"
    with client.audio.speech.with_streaming_response.create(model="az-tts", voice="alloy", input="Hei") as resp:
        assert resp.headers["content-type"] == "audio/mpeg" and resp.read() == speech_bytes("Hei")
    heard = client.audio.transcriptions.create(model="az-whisper", file=("a.wav", io.BytesIO(b"RIFF\r\n--x")))
    assert heard.text == "heard 9 bytes of a.wav"
    assert az.requests[-1].path == "/openai/deployments/whisper-dep/audio/transcriptions"
    assert client.audio.translations.create(model="az-whisper", file=("b.mp3", b"abcd")).text
    with pytest.raises(openai.BadRequestError) as caught:
        client.moderations.create(model="az-moderation", input="x")
    assert caught.value.code == "unsupported_endpoint" and "/v1/moderations" in caught.value.message
    assert az.requests_to("/moderations") == []


def test_azure_v1_and_foundry_forms(fakes: Fakes, client: openai.OpenAI) -> None:
    az = fakes[0]
    v1 = client.embeddings.create(model="v1-dep", input=["a", "bb"], encoding_format="float")
    assert [d.embedding for d in v1.data] == [vector("a", 4), vector("bb", 4)]
    sent = az.requests[-1]
    assert (sent.path, sent.query, sent.json["model"]) == ("/openai/v1/embeddings", "", "v1-dep")
    foundry = client.embeddings.create(model="foundry-embed", input="x")
    assert foundry.data[0].embedding == vector("x", 4)
    sent = az.requests[-1]
    assert sent.path == "/models/embeddings" and sent.query == "api-version=2024-05-01-preview"
    assert sent.json["model"] == "foundry-embed"
    with pytest.raises(openai.BadRequestError) as caught:  # the models endpoint has no speech
        client.audio.speech.create(model="foundry-tts", voice="alloy", input="x")
    assert caught.value.code == "unsupported_endpoint"


# -- Cloudflare -------------------------------------------------------------------------------


def test_cloudflare_embeddings_on_the_openai_compatible_endpoint(fakes: Fakes, client: openai.OpenAI) -> None:
    cf = fakes[1]
    made = client.embeddings.create(model=CF_MODEL, input=["I love matcha"])  # base64, packed by the gateway
    assert made.data[0].embedding == vector("I love matcha", 4) and made.usage.prompt_tokens == 3
    sent = cf.requests[-1]
    assert sent.path == f"/client/v4/accounts/{ACCOUNT}/ai/v1/embeddings"
    assert sent.headers["authorization"] == f"Bearer {CF_TOKEN}" and sent.json["model"] == CF_MODEL
    with pytest.raises(openai.BadRequestError) as caught:  # no documented OpenAI-compatible images route
        client.images.generate(model="@cf/black-forest-labs/flux-1-schnell", prompt="p")
    assert caught.value.code == "unsupported_endpoint" and cf.requests_to("/images/generations") == []


# -- Cohere -----------------------------------------------------------------------------------


def test_cohere_embeddings_translated_both_ways(fakes: Fakes, client: openai.OpenAI) -> None:
    co = fakes[2]
    default = client.embeddings.create(model="embed-v4.0", input=["Paris", "Oslo city"])  # SDK asks base64
    assert [d.embedding for d in default.data] == [vector("Paris", 4), vector("Oslo city", 4)]
    assert default.usage.prompt_tokens == 3 and default.model == "embed-v4.0"
    sent = co.requests[-1]
    assert sent.path == "/v2/embed" and sent.headers["authorization"] == f"Bearer {CO_KEY}"
    assert sent.json == {
        "model": "embed-v4.0",
        "texts": ["Paris", "Oslo city"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    query = client.embeddings.create(
        model="embed-v4.0",
        input="where?",
        dimensions=6,
        encoding_format="float",
        extra_body={"input_type": "search_query"},
    )
    assert query.data[0].embedding == vector("where?", 6)
    assert co.requests[-1].json["input_type"] == "search_query" and co.requests[-1].json["output_dimension"] == 6
    with pytest.raises(openai.BadRequestError, match="token arrays"):
        client.embeddings.create(model="embed-v4.0", input=[[1, 2]])
    co.script(CFail(400, message="invalid request: output_dimension 7 is not supported"))
    with pytest.raises(openai.BadRequestError, match="output_dimension"):  # Cohere's own 400 reaches the client
        client.embeddings.create(model="embed-v4.0", input="x", dimensions=7)


# -- failover across engines and the records --------------------------------------------------


def test_failover_across_azure_cohere_and_cloudflare(fakes: Fakes, client: openai.OpenAI) -> None:
    az, cf, co, oa = fakes
    az.script(MFail(500))
    co.script(CFail(503))
    raw = client.embeddings.with_raw_response.create(model="shared-embed", input="abc", encoding_format="float")
    assert raw.headers["x-unigate-channel"] == "cf" and raw.headers["x-unigate-attempts"] == "3"
    assert raw.parse().data[0].embedding == vector("abc", 4) and raw.parse().model == "shared-embed"
    assert [len(az.requests_to("/embeddings")), len(co.requests), len(cf.requests)] == [1, 1, 1]
    az.script(MFail(429))
    speech = client.audio.speech.with_raw_response.create(model="shared-tts", voice="alloy", input="Hei")
    assert speech.headers["x-unigate-channel"] == "oa" and speech.content == speech_bytes("Hei")
    assert oa.requests[-1].json["model"] == "tts-1"


def _records(gw: RunningGateway, n: int) -> list[dict[str, Any]]:
    def fetch() -> list[dict[str, Any]] | None:
        resp = httpx.get(gw.base_url + "/stats/requests", headers={"authorization": f"Bearer {CLIENT}"})
        rows: list[dict[str, Any]] = resp.json()["data"]
        return rows if len(rows) >= n else None

    rows = wait_until(fetch)
    assert rows is not None, f"fewer than {n} records were written"
    return sorted(rows, key=lambda r: r["timestamp"])


def test_records_hold_usage_and_cost_per_host(tmp_path: Path, fakes: Fakes) -> None:
    az, cf, co, oa = fakes
    env = {"DISABLE_DATABASE": "false", "DB_PATH": str(tmp_path / "stats.db")}
    with run_gateway(config(az, cf, co, oa), env=env) as gw:
        client = gw.client(CLIENT)
        az.script(MFail(500))
        client.embeddings.create(model="shared-embed", input=["one two", "three"])
        client.embeddings.create(model="embed-v4.0", input="four five six")
        client.embeddings.create(model="az-embed", input="seven")
        rows = _records(gw, 3)
    failed_over, cohere_row, azure_row = rows
    assert [(a["channel"], a["status"]) for a in failed_over["attempts"]] == [("az", 500), ("co", 200)]
    assert (failed_over["channel"], failed_over["prompt_tokens"], failed_over["tokens_estimated"]) == ("co", 3, False)
    assert failed_over["cost"] == pytest.approx(3 * 2 / 1_000_000)
    assert (cohere_row["upstream_model"], cohere_row["prompt_tokens"]) == ("embed-v4.0", 3)
    assert cohere_row["cost"] == pytest.approx(3 * 1 / 1_000_000)
    assert (azure_row["channel"], azure_row["upstream_model"], azure_row["prompt_tokens"]) == ("az", "emb-dep", 1)
