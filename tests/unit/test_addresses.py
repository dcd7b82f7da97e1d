"""The key a client is counted and banned under: an IPv6 address is its network, an
IPv4-mapped IPv6 address the IPv4 address, an IPv4 address itself."""

from __future__ import annotations

import pytest

from sftphook.addresses import address_key, describe


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:a:b:c:d", "2001:db8:1:2::/64"),
        ("2001:0DB8:0001:0002:0000:0000:0000:0001", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::", "2001:db8:1:2::/64"),
        ("2001:db8::7", "2001:db8::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::ffff:c000:201", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::/64"),
        ("unknown", "unknown"),
        ("", ""),
        ("192.0.2.300", "192.0.2.300"),
        ("2001:db8::/64", "2001:db8::/64"),
    ],
)
def test_the_key_of_an_address(address: str, key: str) -> None:
    assert address_key(address) == key


def test_every_address_of_one_network_has_the_key_of_the_network() -> None:
    keys = {
        address_key(f"2001:db8:1:2:{i:x}::{j:x}")
        for i in range(0, 0x10000, 0x1111)
        for j in (1, 0xFFFF)
    }
    assert keys == {"2001:db8:1:2::/64"}
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")


@pytest.mark.parametrize(
    ("prefix", "key"),
    [
        (48, "2001:db8:1::/48"),
        (56, "2001:db8:1:200::/56"),
        (64, "2001:db8:1:2ff::/64"),
        (127, "2001:db8:1:2ff:a:b:c:c/127"),
        (128, "2001:db8:1:2ff:a:b:c:d"),
        (1, "::/1"),
    ],
)
def test_the_prefix_length_is_the_operators(prefix: int, key: str) -> None:
    assert address_key("2001:db8:1:2ff:a:b:c:d", prefix) == key
    # IPv4 addresses are themselves whatever the IPv6 prefix.
    assert address_key("::ffff:192.0.2.1", prefix) == "192.0.2.1"


def test_a_zone_is_left_out_of_a_single_address_key() -> None:
    assert address_key("fe80::1%eth0", 128) == "fe80::1"


def test_log_lines_name_the_address_and_its_network() -> None:
    assert describe("203.0.113.7", "203.0.113.7") == "address 203.0.113.7"
    assert describe("2001:db8::/64", "2001:db8::7") == "address 2001:db8::7 (network 2001:db8::/64)"
    assert describe("2001:db8::/64") == "network 2001:db8::/64"
    assert describe("203.0.113.7") == "address 203.0.113.7"
