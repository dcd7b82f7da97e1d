import base64
import json
import time

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from standardwebhooks import Webhook as StandardWebhook

from sftphook.events import EventRecord, Topic
from sftphook.webhooks import payload, signing


def test_hub_signature_matches_the_design_test_vector():
    assert signing.hub_signature("Very Secret Secret", b"Hello! This is a test payload.") == (
        "sha256=8ba4c47558de1872150c3ec82211c34bf0cbd6d60fc4f9875b97853af06de917"
    )


def test_generated_secret_is_whsec_of_32_bytes():
    secret = signing.generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert secret != signing.generate_secret()


def test_standard_signature_verifies_with_the_standardwebhooks_library():
    secret = signing.generate_secret()
    body = b'{"hello":"world"}'
    # The library checks the timestamp against its clock; give it a fresh one.
    now = int(time.time())
    headers = signing.signature_headers([secret], "msg_1", now, body)
    StandardWebhook(secret).verify(body, headers)


def test_grace_period_signs_with_both_secrets():
    old, new = signing.generate_secret(), signing.generate_secret()
    headers = signing.signature_headers([new, old], "m", 1, b"x")
    parts = headers["webhook-signature"].split(" ")
    assert parts == [
        signing.standard_signature(new, "m", 1, b"x"),
        signing.standard_signature(old, "m", 1, b"x"),
    ]
    assert headers["X-Hub-Signature"] == signing.hub_signature(new, b"x")
    assert headers["X-Hub-Signature-256"] == headers["X-Hub-Signature"]


def test_paths_are_form_urlencoded_like_sftp_to_go():
    assert payload.encode_path("inbound/invoice 2026.csv") == "inbound/invoice+2026.csv"
    assert payload.encode_path("a+b%c.txt") == "a%2Bb%25c.txt"
    assert payload.encode_path("dir/sub/") == "dir/sub/"


def test_event_payload_has_the_sftp_to_go_shape():
    event = EventRecord(
        organization_id="org",
        topic=Topic.FILE_DOWNLOADED,
        actor_id="partner-acme",
        path="inbound/a b.csv",
        size=10,
        sha256="ab" * 32,
        protocol="SFTP",
        client_ip="127.0.0.1",
        session_id="s1",
        created_at=1591106805970,
    )
    body = json.loads(payload.event_payload(event, webhook_id="w", delivery_id="d", attempt_id="a"))
    assert body["Id"] == event.id == body["Metadata"]["Event"]["Id"]
    assert body["Topic"] == "file.downloaded"
    assert body["CreatedAt"] == 1591106805970
    assert body["Actor"] == {"Type": "User", "Id": "partner-acme"}
    assert body["Resource"] == "File"
    assert body["Data"]["Path"] == "inbound/a+b.csv"
    assert body["Data"]["Size"] == 10
    assert body["Data"]["Metadata"] == {
        "Protocol": "SFTP",
        "ClientIp": "127.0.0.1",
        "SessionId": "s1",
    }
    assert body["Metadata"]["Webhook"] == {"Id": "w"}
    assert body["Metadata"]["Delivery"] == {"Id": "d"}
    assert body["Metadata"]["Attempt"] == {"Id": "a"}
    assert body["Metadata"]["Organization"] == {"Id": "org"}


@given(
    path=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
    actor=st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    size=st.integers(min_value=0, max_value=2**63 - 1),
)
@hsettings(max_examples=300, deadline=None)
def test_the_body_is_compact_utf8_json_byte_for_byte(path: str, actor: str, size: int):
    """The bytes signed and sent are exactly `json.dumps(..., separators=(",", ":"),
    ensure_ascii=False)` in UTF-8, whatever the path and actor hold (controls, quotes, emoji,
    U+2028): a receiver re-serialising with the standard library gets the signed bytes back."""
    event = EventRecord(
        organization_id="org",
        topic=Topic.FILE_CREATED,
        actor_id=actor,
        path="in/" + path,
        size=size,
        sha256=None,
        protocol="SFTP",
        client_ip="::1",
        session_id="s",
        created_at=1591106805970,
    )
    body = payload.event_payload(event, webhook_id="w", delivery_id="d", attempt_id="a")
    parsed = json.loads(body)
    assert body == json.dumps(parsed, separators=(",", ":"), ensure_ascii=False).encode()
    assert parsed["Actor"]["Id"] == actor and parsed["Data"]["Size"] == size
