"""Brute-force protection on one node: failures counted per client key, bans, their expiry."""

from __future__ import annotations

import pytest

from sftphook.addresses import address_key
from sftphook.sftp.defender import Defender


def test_failures_from_addresses_of_one_network_ban_the_network(
    caplog: pytest.LogCaptureFixture,
) -> None:
    defender = Defender(threshold=3, window=60, duration=100)
    for i, now in enumerate((0.0, 1.0)):
        client = f"2001:db8:1:2::{i + 1}"
        assert not defender.failed(address_key(client), now, client=client)
    assert defender.failed(address_key("2001:db8:1:2:ffff::3"), 2.0, client="2001:db8:1:2:ffff::3")
    assert defender.is_banned(address_key("2001:db8:1:2:abcd::99"), 3.0)
    assert not defender.is_banned(address_key("2001:db8:1:3::1"), 3.0)
    assert (
        "address 2001:db8:1:2:ffff::3 (network 2001:db8:1:2::/64) banned for 100 s after 3 "
        "failed logins within 60 s" in caplog.text
    )


def test_failures_out_of_the_window_do_not_count() -> None:
    defender = Defender(threshold=3, window=10, duration=100)
    assert not defender.failed("203.0.113.7", 0.0)
    assert not defender.failed("203.0.113.7", 5.0)
    assert not defender.failed("203.0.113.7", 10.0)  # the first fell out of the window
    assert defender.failed("203.0.113.7", 11.0)
    assert defender.is_banned("203.0.113.7", 110.9)
    assert not defender.is_banned("203.0.113.7", 111.0)


def test_counting_starts_again_after_a_ban() -> None:
    defender = Defender(threshold=2, window=1000, duration=10)
    assert not defender.failed("203.0.113.7", 0.0)
    assert defender.failed("203.0.113.7", 1.0)
    assert not defender.failed("203.0.113.7", 12.0)  # the ban is over; one failure so far
    assert defender.failed("203.0.113.7", 13.0)


def test_expired_records_are_forgotten_as_time_passes() -> None:
    defender = Defender(threshold=2, window=10, duration=20)
    for i in range(1000):
        defender.failed(f"10.0.{i // 256}.{i % 256}", i / 100)  # one failure each, within 10 s
    defender.failed("203.0.113.7", 10.0)
    defender.failed("203.0.113.7", 10.0)  # banned until 30
    assert len(defender._failures) == 1000 - 1  # the first (at 0.0) left the window at 10.0
    defender.failed("198.51.100.1", 25.0)
    assert list(defender._failures) == ["198.51.100.1"]
    assert defender.is_banned("203.0.113.7", 29.0)
    assert not defender.is_banned("203.0.113.7", 30.0)
    assert defender._banned_until == {} and defender._ends == []


def test_past_the_cap_the_oldest_failure_record_is_dropped_first() -> None:
    defender = Defender(threshold=2, window=1000, duration=1000, max_addresses=3)
    for i, address in enumerate(["10.0.0.1", "10.0.0.2", "10.0.0.3"]):
        defender.failed(address, float(i))
    defender.failed("10.0.0.1", 3.0)  # banned: its record goes, and the cap is not reached
    defender.failed("10.0.0.4", 4.0)
    defender.failed("10.0.0.5", 5.0)  # a fourth record: 10.0.0.2's, the oldest, is dropped
    assert list(defender._failures) == ["10.0.0.3", "10.0.0.4", "10.0.0.5"]
    assert not defender.failed("10.0.0.2", 6.0)  # counted from one again
    assert defender.failed("10.0.0.4", 7.0)  # a record kept still counts


def test_past_the_cap_the_ban_that_ends_first_is_dropped() -> None:
    defender = Defender(threshold=1, window=1000, duration=1000, max_addresses=2)
    assert defender.ban("10.0.0.1", 500.0, 0.0)
    assert defender.failed("10.0.0.2", 1.0)  # banned until 1001
    assert defender.ban("10.0.0.3", 800.0, 2.0)
    assert not defender.is_banned("10.0.0.1", 3.0)
    assert defender.is_banned("10.0.0.2", 3.0) and defender.is_banned("10.0.0.3", 3.0)


def test_a_ban_from_another_node_extends_but_never_shortens() -> None:
    defender = Defender(threshold=1, window=10, duration=100)
    assert defender.ban("203.0.113.7", 50.0, 0.0)
    assert not defender.ban("203.0.113.7", 80.0, 1.0)  # banned already
    assert not defender.ban("203.0.113.7", 20.0, 2.0)
    assert defender.is_banned("203.0.113.7", 79.0)
    assert not defender.is_banned("203.0.113.7", 80.0)
    assert not defender.ban("203.0.113.7", 80.0, 90.0)  # a ban that is over already


def test_repeated_extensions_do_not_grow_memory() -> None:
    defender = Defender(threshold=1, window=10, duration=100)
    for i in range(10_000):
        defender.ban("203.0.113.7", 1000.0 + i / 1000, i / 1000)
    assert len(defender._ends) <= 2 * len(defender._banned_until) + 1024
    assert defender.is_banned("203.0.113.7", 1009.9)


def test_a_lifted_address_is_free_and_counted_from_one() -> None:
    defender = Defender(threshold=2, window=1000, duration=1000)
    defender.failed("203.0.113.7", 0.0)
    assert defender.failed("203.0.113.7", 1.0)
    defender.failed("198.51.100.1", 1.0)
    assert defender.lift("203.0.113.7")
    assert not defender.is_banned("203.0.113.7", 2.0)
    assert not defender.failed("203.0.113.7", 3.0)
    assert defender.lift("198.51.100.1") is False  # failures only: forgotten, no ban
    assert not defender.failed("198.51.100.1", 4.0)
    assert not defender.lift("192.0.2.1")
