"""Our signatures checked by verifiers we did not write: PyPI `standardwebhooks` and npm
`@octokit/webhooks-methods` (run with the machine's node)."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from sftphook.events import EventRecord, Topic
from sftphook.receiver import check_signature, verify
from sftphook.webhooks import payload, signing
from tests.conftest import IN_CI, require_binary

JS_DIR = Path(__file__).resolve().parents[1] / "js"
VECTOR_SECRET = "Very Secret Secret"
VECTOR_BODY = b"Hello! This is a test payload."


def _unicode_event_body() -> bytes:
    event = EventRecord(
        organization_id="org-ü",
        topic=Topic.FILE_CREATED,
        actor_id="partner-åcme",
        path="inbound/über naïve ✓ 日本語 + 🚀.csv",
        size=357464,
        sha256="ab" * 32,
        created_at=1591106805970,
    )
    return payload.event_payload(event, webhook_id="w", delivery_id="d", attempt_id="a")


BODIES = [
    VECTOR_BODY,
    _unicode_event_body(),
    json.dumps({"Data": {"Path": 'a\u2028b\r\nc"d\\e'}}, ensure_ascii=False).encode(),
    json.dumps({"emoji": "🚀" * 1000, "cjk": "日本語" * 1000}, ensure_ascii=False).encode(),
    json.dumps({"big": "x" * 200_000}).encode(),
    b"{}",
]
SECRETS = [VECTOR_SECRET, signing.generate_secret(), "ünïcødé secret ✓"]


def _node_verify(cases: list[dict[str, str]]) -> list[bool]:
    node = require_binary("node")
    if not (JS_DIR / "node_modules" / "@octokit" / "webhooks-methods").is_dir():
        message = "tests/js/node_modules is missing: `make test` runs `npm ci --prefix tests/js`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [node, str(JS_DIR / "verify.mjs")],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == len(cases)
    return results


def _case(secret: str, body: bytes, signature: str) -> dict[str, str]:
    return {
        "secret": secret,
        "body_base64": base64.b64encode(body).decode(),
        "signature": signature,
    }


def test_octokit_verifies_our_hub_signatures_and_refuses_wrong_ones():
    cases: list[dict[str, str]] = []
    expected: list[bool] = []
    for secret in SECRETS:
        for body in BODIES:
            hub = signing.hub_signature(secret, body)
            if secret.startswith("whsec_"):
                headers = signing.signature_headers([secret], "d", 1, body)
                assert headers["X-Hub-Signature-256"] == headers["X-Hub-Signature"] == hub
            cases.append(_case(secret, body, hub))
            # The same signature over a changed body, and under another secret, must fail.
            cases.append(_case(secret, body + b" ", hub))
            cases.append(_case(secret + "x", body, hub))
            expected += [True, False, False]
    assert _node_verify(cases) == expected


def test_octokit_agrees_with_the_design_test_vector():
    signature = "sha256=8ba4c47558de1872150c3ec82211c34bf0cbd6d60fc4f9875b97853af06de917"
    assert signing.hub_signature(VECTOR_SECRET, VECTOR_BODY) == signature
    assert _node_verify([_case(VECTOR_SECRET, VECTOR_BODY, signature)]) == [True]


def test_octokit_refuses_the_old_secret_on_x_hub_signature_after_rotation():
    old, new = signing.generate_secret(), signing.generate_secret()
    body = _unicode_event_body()
    hub = signing.signature_headers([new, old], "d", 1, body)["X-Hub-Signature-256"]
    assert _node_verify([_case(new, body, hub), _case(old, body, hub)]) == [True, False]


@pytest.mark.parametrize("body", BODIES[1:], ids=["event", "separators", "emoji", "big", "empty"])
def test_standardwebhooks_verifies_our_signatures(body):
    secret = signing.generate_secret()
    headers = signing.signature_headers([secret], "delivery-1", int(time.time()), body)
    assert StandardWebhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(signing.generate_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(secret).verify(body + b" ", headers)


def test_standardwebhooks_accepts_either_secret_during_a_rotation_grace_period():
    old, new = signing.generate_secret(), signing.generate_secret()
    body = _unicode_event_body()
    headers = signing.signature_headers([new, old], "delivery-2", int(time.time()), body)
    assert StandardWebhook(new).verify(body, headers)
    assert StandardWebhook(old).verify(body, headers)
    after = signing.signature_headers([new], "delivery-3", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(old).verify(body, after)


def test_our_verify_accepts_what_standardwebhooks_signs():
    secret = signing.generate_secret()
    body = _unicode_event_body()
    moment = datetime.now(tz=UTC)
    signature = StandardWebhook(secret).sign("msg_1", moment, body.decode())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }
    assert verify(secret, body, headers) == json.loads(body)
    assert check_signature(secret, body, headers) == "webhook-signature"
    with pytest.raises(ValueError):
        verify(signing.generate_secret(), body, headers)
