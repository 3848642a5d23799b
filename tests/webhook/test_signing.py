"""Standard Webhooks signatures, checked with the standardwebhooks library's own verifier."""

import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from quittance.webhook import signing


def test_secret_format() -> None:
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert secret != signing.generate_secret()
    Webhook(secret)  # the library accepts it


def test_headers_verify_with_the_library() -> None:
    secret = signing.generate_secret()
    body = b'{"id":"evt_1","type":"invoice.created"}'
    headers = signing.headers([secret], "whd_1", int(time.time()), body)
    assert set(headers) >= {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == {"id": "evt_1", "type": "invoice.created"}


def test_tampering_is_detected() -> None:
    secret = signing.generate_secret()
    body = b'{"amount":100}'
    headers = signing.headers([secret], "whd_1", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"amount":999}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.generate_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "whd_2"})


def test_rotation_sends_both_signatures() -> None:
    old, new = signing.generate_secret(), signing.generate_secret()
    body = b"{}"
    headers = signing.headers([new, old], "whd_1", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)


def test_signature_matches_the_spec_by_hand() -> None:
    import base64
    import hashlib
    import hmac

    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    expected = base64.b64encode(
        hmac.new(b"k" * 32, b"whd_1.1700000000.{}", hashlib.sha256).digest()
    ).decode()
    assert signing.sign(secret, "whd_1", 1700000000, b"{}") == f"v1,{expected}"
