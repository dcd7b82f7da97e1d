"""Secrets at rest: round trip, a wrong key refused without leaking, the 0600 key file."""

import base64
import os
import stat

import pytest

from sftphook.webhooks.crypto import SecretBox, decode_key, load_or_create_key
from sftphook.webhooks.signing import generate_secret


def test_a_secret_round_trips_and_is_not_stored_in_clear():
    box = SecretBox(os.urandom(32))
    secret = generate_secret()
    sealed = box.encrypt(secret)
    assert sealed.startswith("v1:")
    assert secret not in sealed
    assert secret[6:] not in sealed
    assert box.decrypt(sealed) == secret


def test_each_encryption_uses_a_fresh_nonce():
    box = SecretBox(os.urandom(32))
    assert box.encrypt("Bearer abc") != box.encrypt("Bearer abc")


def test_unicode_values_round_trip():
    box = SecretBox(os.urandom(32))
    assert box.decrypt(box.encrypt("Basic dXNlcjpww6Q= — ünïcødé ✓")) == (
        "Basic dXNlcjpww6Q= — ünïcødé ✓"
    )


def test_a_wrong_key_is_refused_with_a_message_that_has_no_secret():
    key, other = os.urandom(32), os.urandom(32)
    secret = generate_secret()
    sealed = SecretBox(key).encrypt(secret)
    with pytest.raises(ValueError) as caught:
        SecretBox(other).decrypt(sealed)
    message = str(caught.value)
    assert "encryption key differs" in message
    for leaked in (secret, secret[6:], base64.b64encode(key).decode(), sealed):
        assert leaked not in message
    assert secret not in repr(caught.value)


def test_a_tampered_value_is_refused():
    box = SecretBox(os.urandom(32))
    sealed = box.encrypt("Bearer token")
    raw = bytearray(base64.b64decode(sealed[3:]))
    raw[-1] ^= 1
    with pytest.raises(ValueError, match="cannot decrypt"):
        box.decrypt("v1:" + base64.b64encode(bytes(raw)).decode())
    with pytest.raises(ValueError, match="unknown encrypted value format"):
        box.decrypt("v9:" + sealed[3:])


def test_keys_must_be_32_bytes():
    with pytest.raises(ValueError, match="32 bytes"):
        SecretBox(b"short")
    with pytest.raises(ValueError, match="base64 of 32 bytes"):
        decode_key(base64.b64encode(b"x" * 16).decode())
    with pytest.raises(ValueError, match="base64 of 32 bytes"):
        decode_key("not base64 !!")
    assert decode_key(base64.b64encode(b"k" * 32).decode() + "\n") == b"k" * 32


def test_the_key_file_is_created_0600_and_reused(tmp_path):
    path = tmp_path / "data" / "secrets.key"
    first = load_or_create_key(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == first
    # A box made from the reused key opens what the first one sealed (a restart keeps secrets).
    sealed = SecretBox(first).encrypt("whsec_x")
    assert SecretBox(load_or_create_key(path)).decrypt(sealed) == "whsec_x"


def test_the_key_file_is_0600_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        path = tmp_path / "k"
        load_or_create_key(path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_two_data_directories_get_different_keys(tmp_path):
    assert load_or_create_key(tmp_path / "a" / "key") != load_or_create_key(tmp_path / "b" / "key")
