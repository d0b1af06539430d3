"""SigV4 signing (``providers.bedrock.sign_v4``) against AWS's published test vectors (aws-sig-v4-test-suite:
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv4-signing-request.html points to the
suite; credentials AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 2015-08-30T12:36:00Z,
us-east-1, service "service"), with the time injected, and the properties Bedrock relies on."""

from __future__ import annotations

import calendar
import re

import pytest

from unigate.config.compile import AwsCredentials
from unigate.providers.bedrock import sign_v4

EXAMPLE = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
AT = float(calendar.timegm((2015, 8, 30, 12, 36, 0)))
SCOPE = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "


@pytest.mark.parametrize(
    ("vector", "method", "url", "headers", "body", "signed", "signature"),
    [
        (
            "get-vanilla",
            "GET",
            "https://example.amazonaws.com/",
            {},
            b"",
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "get-vanilla-query-order-key-case",
            "GET",
            "https://example.amazonaws.com/?Param2=value2&Param1=value1",
            {},
            b"",
            "host;x-amz-date",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        (
            "post-vanilla",
            "POST",
            "https://example.amazonaws.com/",
            {},
            b"",
            "host;x-amz-date",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "post-x-www-form-urlencoded",
            "POST",
            "https://example.amazonaws.com/",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"Param1=value1",
            "content-type;host;x-amz-date",
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        ),
    ],
)
def test_aws_published_vectors(
    vector: str, method: str, url: str, headers: dict[str, str], body: bytes, signed: str, signature: str
) -> None:
    out = sign_v4(EXAMPLE, "us-east-1", "service", method, url, headers, body, AT)
    assert out["X-Amz-Date"] == "20150830T123600Z"
    assert out["Authorization"] == f"{SCOPE}SignedHeaders={signed}, Signature={signature}", vector
    assert EXAMPLE.secret_key not in str(out)


def authorization_signature(headers: dict[str, str]) -> str:
    found = re.search(r"Signature=([0-9a-f]{64})$", headers["Authorization"])
    assert found is not None
    return found.group(1)


def test_the_body_the_time_and_the_region_are_covered() -> None:
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.nova-pro-v1:0/converse"
    base = sign_v4(EXAMPLE, "us-east-1", "bedrock", "POST", url, {"content-type": "application/json"}, b"{}", AT)
    variants = [
        sign_v4(EXAMPLE, "us-east-1", "bedrock", "POST", url, {"content-type": "application/json"}, b"{ }", AT),
        sign_v4(EXAMPLE, "us-east-1", "bedrock", "POST", url, {"content-type": "application/json"}, b"{}", AT + 1),
        sign_v4(EXAMPLE, "eu-west-1", "bedrock", "POST", url, {"content-type": "application/json"}, b"{}", AT),
        sign_v4(
            EXAMPLE, "us-east-1", "bedrock", "POST", url + "-stream", {"content-type": "application/json"}, b"{}", AT
        ),
    ]
    signatures = {authorization_signature(h) for h in [base, *variants]}
    assert len(signatures) == 5
    assert "Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request" in base["Authorization"]
    assert "SignedHeaders=content-type;host;x-amz-date," in base["Authorization"]


def test_a_session_token_is_sent_and_signed() -> None:
    temporary = AwsCredentials("ASIAEXAMPLE", "secret", "FwoGZXIvYXdzEFAKE")
    out = sign_v4(temporary, "us-east-1", "bedrock", "POST", "https://h.example/model/m/converse", {}, b"{}", AT)
    assert out["X-Amz-Security-Token"] == "FwoGZXIvYXdzEFAKE"
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token," in out["Authorization"]


def test_the_canonical_path_is_encoded_again() -> None:
    """Non-S3 SigV4 encodes the path once more: a ``%2F`` sent in an ARN is signed as ``%252F``, so the
    raw and the encoded forms of one path sign differently (and each verifies only as sent)."""
    arn = "https://h.example/model/arn:aws:bedrock:us-east-1:1:inference-profile%2Fus.x/converse"
    decoded = "https://h.example/model/arn:aws:bedrock:us-east-1:1:inference-profile/us.x/converse"
    one = sign_v4(EXAMPLE, "us-east-1", "bedrock", "POST", arn, {}, b"{}", AT)
    two = sign_v4(EXAMPLE, "us-east-1", "bedrock", "POST", decoded, {}, b"{}", AT)
    assert authorization_signature(one) != authorization_signature(two)
