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
