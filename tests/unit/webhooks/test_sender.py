"""The transport's own check of IP-literal hosts, remembered per URL for the transport's life."""

from __future__ import annotations

import pytest

from sftphook.webhooks.http import HttpTransport
from sftphook.webhooks.sender import TransportError
from sftphook.webhooks.urlsafety import UrlPolicy


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/hook", "http://2130706433:9/hook", "http://[::1]:9/hook"],
)
async def test_an_ip_literal_the_policy_forbids_is_refused_every_time(url: str):
    transport = HttpTransport(UrlPolicy.from_settings(True, []))
    try:
        for _ in range(3):  # the verdict is remembered, and still a refusal
            with pytest.raises(TransportError, match="refused: .*loopback"):
                await transport.send(url, {}, b"{}")
    finally:
        await transport.close()


async def test_the_verdict_belongs_to_the_transport_and_its_policy():
    url = "http://127.0.0.1:9/hook"
    strict = HttpTransport(UrlPolicy.from_settings(True, []))
    allowing = HttpTransport(UrlPolicy.from_settings(True, ["127.0.0.0/8"]), timeout=2)
    try:
        with pytest.raises(TransportError, match="refused"):
            await strict.send(url, {}, b"{}")
        # Allowed: it gets as far as connecting (nothing listens on port 9).
        with pytest.raises(TransportError) as refused:
            await allowing.send(url, {}, b"{}")
        assert str(refused.value) == "connection refused: 127.0.0.1:9"
    finally:
        await strict.close()
        await allowing.close()
