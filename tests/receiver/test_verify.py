"""`sftphook.receiver.verify`: what it accepts, what it refuses and how it says why."""

import json

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from starlette.datastructures import Headers
from werkzeug.datastructures import EnvironHeaders

import sftphook.receiver
from sftphook.receiver import InvalidSignature, check_signature, verify
from sftphook.webhooks import signing

NOW = 1_780_000_000
BODY = json.dumps(
    {"Id": "36cd78bc", "Topic": "file.created", "Data": {"Path": "inbound/a+b.csv"}}
).encode()
VECTOR_SECRET = "Very Secret Secret"
VECTOR_BODY = b"Hello! This is a test payload."
VECTOR_SIGNATURE = "sha256=8ba4c47558de1872150c3ec82211c34bf0cbd6d60fc4f9875b97853af06de917"


def signed(secrets, body=BODY, timestamp=NOW, message_id="d-1"):
    return signing.signature_headers(secrets, message_id, timestamp, body)


def only(headers, *names):
    wanted = {n.lower() for n in names}
    return {k: v for k, v in headers.items() if k.lower() in wanted}


STANDARD = ("webhook-id", "webhook-timestamp", "webhook-signature")


def test_verify_is_the_public_api():
    assert {"verify", "InvalidSignature", "check_signature"} <= set(sftphook.receiver.__all__)
    assert issubclass(InvalidSignature, ValueError)


def test_a_signed_request_verifies_and_returns_its_payload():
    secret = signing.generate_secret()
    assert verify(secret, BODY, signed([secret]), now=NOW) == json.loads(BODY)
    assert check_signature(secret, BODY, signed([secret]), now=NOW) == "webhook-signature"


def test_the_design_test_vector_verifies_through_x_hub_signature():
    for name in ("X-Hub-Signature-256", "X-Hub-Signature", "x-hub-signature-256"):
        headers = {name: VECTOR_SIGNATURE}
        assert check_signature(VECTOR_SECRET, VECTOR_BODY, headers).lower() == name.lower()
    upper_hex = {"X-Hub-Signature-256": "sha256=" + VECTOR_SIGNATURE[7:].upper()}
    assert check_signature(VECTOR_SECRET, VECTOR_BODY, upper_hex)
    with pytest.raises(InvalidSignature, match="X-Hub-Signature does not match"):
        check_signature(VECTOR_SECRET, VECTOR_BODY + b" ", {"X-Hub-Signature": VECTOR_SIGNATURE})


def test_each_scheme_alone_is_enough():
    secret = signing.generate_secret()
    headers = signed([secret])
    assert check_signature(secret, BODY, only(headers, *STANDARD), now=NOW) == "webhook-signature"
    hub = only(headers, "X-Hub-Signature-256")
    assert check_signature(secret, BODY, hub, now=NOW) == "X-Hub-Signature-256"
    hub = only(headers, "X-Hub-Signature")
    assert check_signature(secret, BODY, hub, now=NOW) == "X-Hub-Signature"


@pytest.mark.parametrize(
    "wrap",
    [
        lambda h: {k.upper(): v for k, v in h.items()},
        lambda h: {k.lower(): v for k, v in h.items()},
        lambda h: CIMultiDictProxy(CIMultiDict(h)),
        lambda h: Headers(headers=h),
        lambda h: EnvironHeaders({"HTTP_" + k.upper().replace("-", "_"): v for k, v in h.items()}),
        lambda h: [(k.lower().encode(), v.encode()) for k, v in h.items()],
        lambda h: list(h.items()),
    ],
    ids=["upper-dict", "lower-dict", "aiohttp", "starlette", "flask", "asgi-raw", "pairs"],
)
def test_headers_are_found_whatever_their_case_and_container(wrap):
    secret = signing.generate_secret()
    headers = wrap(signed([secret]))
    assert check_signature(secret, BODY, headers, now=NOW) == "webhook-signature"
    assert check_signature(secret, BODY, headers, now=NOW, schemes=("hub",)).lower() == (
        "x-hub-signature-256"
    )


def test_body_may_be_bytes_bytearray_memoryview_or_text():
    secret = signing.generate_secret()
    body = '{"Data":{"Path":"über/naïve ✓.csv"}}'
    headers = signed([secret], body.encode())
    for form in (body.encode(), bytearray(body.encode()), memoryview(body.encode()), body):
        assert verify(secret, form, headers, now=NOW) == json.loads(body)


def test_a_tampered_body_is_refused_with_a_reason_and_no_secret():
    secret = signing.generate_secret()
    headers = signed([secret])
    tampered = BODY.replace(b"a+b", b"a+c")
    with pytest.raises(InvalidSignature) as caught:
        verify(secret, tampered, headers, now=NOW)
    message = str(caught.value)
    assert "webhook-signature does not match the secret" in message
    assert "X-Hub-Signature-256 does not match the secret" in message
    assert caught.value.reasons == message.split("; ")
    # Neither the secret nor the signature the tampered body would need may leak.
    expected = signed([secret], tampered)
    for leaked in (secret, secret[6:], expected["X-Hub-Signature"][7:]):
        assert leaked not in message and leaked not in repr(caught.value)
    assert expected["webhook-signature"][3:] not in message


def test_a_wrong_secret_is_refused():
    headers = signed([signing.generate_secret()])
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(signing.generate_secret(), BODY, headers, now=NOW)


def test_a_stale_timestamp_is_refused_even_when_the_hub_signature_matches():
    secret = signing.generate_secret()
    headers = signed([secret], timestamp=NOW - 301)
    with pytest.raises(InvalidSignature, match=r"301 s old, more than the 300 s tolerance"):
        verify(secret, BODY, headers, now=NOW)
    with pytest.raises(InvalidSignature, match=r"in the future"):
        verify(secret, BODY, signed([secret], timestamp=NOW + 400), now=NOW)
    assert verify(secret, BODY, signed([secret], timestamp=NOW - 299), now=NOW)
    assert verify(secret, BODY, headers, now=NOW, tolerance=600)
    assert verify(secret, BODY, headers, now=NOW, tolerance=None)


def test_the_default_clock_is_now():
    secret = signing.generate_secret()
    with pytest.raises(InvalidSignature, match="old"):
        verify(secret, BODY, signed([secret], timestamp=NOW - 10**6))


def test_the_timestamp_is_signed():
    secret = signing.generate_secret()
    headers = only(signed([secret]), *STANDARD)
    headers["webhook-timestamp"] = str(NOW + 1)
    with pytest.raises(InvalidSignature, match="webhook-signature does not match"):
        verify(secret, BODY, headers, now=NOW)
    headers["webhook-timestamp"] = "soon"
    with pytest.raises(InvalidSignature, match="not a whole number"):
        verify(secret, BODY, headers, now=NOW)


def test_rotation_both_secrets_verify_during_the_grace_period():
    old, new = signing.generate_secret(), signing.generate_secret()
    headers = signed([new, old])
    # A receiver still on the old secret verifies through webhook-signature.
    assert check_signature(old, BODY, headers, now=NOW) == "webhook-signature"
    assert check_signature(new, BODY, headers, now=NOW) == "webhook-signature"
    # X-Hub-Signature carries only the current secret.
    with pytest.raises(InvalidSignature):
        check_signature(old, BODY, headers, now=NOW, schemes=("hub",))
    # A receiver that rotates accepts several secrets.
    after = signed([new])
    assert check_signature([signing.generate_secret(), new], BODY, after, now=NOW)
    with pytest.raises(InvalidSignature, match="any of the 2 secrets"):
        check_signature([old, signing.generate_secret()], BODY, after, now=NOW)


def test_missing_headers_say_what_was_expected():
    secret = signing.generate_secret()
    with pytest.raises(InvalidSignature, match="no signature header"):
        verify(secret, BODY, {"Content-Type": "application/json"})
    headers = only(signed([secret]), "X-Hub-Signature-256")
    with pytest.raises(InvalidSignature, match=r"expected webhook-signature\)"):
        verify(secret, BODY, headers, now=NOW, schemes=("standard",))


def test_an_incomplete_standard_header_set_falls_back_to_the_hub_signature():
    secret = signing.generate_secret()
    headers = signed([secret])
    del headers["webhook-id"]
    assert check_signature(secret, BODY, headers, now=NOW) == "X-Hub-Signature-256"
    with pytest.raises(InvalidSignature, match="webhook-id or webhook-timestamp is missing"):
        check_signature(secret, BODY, headers, now=NOW, schemes=("standard",))


def test_malformed_signature_entries_are_ignored_not_fatal():
    secret = signing.generate_secret()
    headers = only(signed([secret]), *STANDARD)
    good = headers["webhook-signature"]
    headers["webhook-signature"] = f"v1,!!! v2,abc v1a,xyz nonsense  {good}"
    assert check_signature(secret, BODY, headers, now=NOW) == "webhook-signature"
    headers["webhook-signature"] = "v1,!!! v2,abc"
    with pytest.raises(InvalidSignature, match="no v1 entry"):
        check_signature(secret, BODY, headers, now=NOW)
    with pytest.raises(InvalidSignature, match="sha256=<hex>"):
        check_signature(secret, BODY, {"X-Hub-Signature": "sha1=abcdef"})
    with pytest.raises(InvalidSignature, match="does not match"):
        check_signature(secret, BODY, {"X-Hub-Signature": "sha256=ünïcødé"})


def test_a_secret_that_is_not_whsec_still_checks_the_hub_signature():
    headers = {"X-Hub-Signature-256": VECTOR_SIGNATURE, "webhook-signature": "v1,AAAA"}
    headers |= {"webhook-id": "m", "webhook-timestamp": str(NOW)}
    assert check_signature(VECTOR_SECRET, VECTOR_BODY, headers, now=NOW) == "X-Hub-Signature-256"


def test_an_unpadded_whsec_secret_is_accepted():
    secret = signing.generate_secret()
    assert check_signature(secret.rstrip("="), BODY, signed([secret]), now=NOW)


def test_a_signed_body_that_is_not_json_raises_a_json_error():
    secret = signing.generate_secret()
    with pytest.raises(json.JSONDecodeError):
        verify(secret, b"not json", signed([secret], b"not json"), now=NOW)


@pytest.mark.parametrize("bad", ["", [], [""], None])
def test_verify_needs_a_secret(bad):
    with pytest.raises(ValueError, match="at least one signing secret"):
        verify(bad, BODY, {})


def test_schemes_are_checked():
    with pytest.raises(ValueError, match="schemes"):
        check_signature("whsec_AAAA", BODY, {}, schemes=("github",))
