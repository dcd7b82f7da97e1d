import pytest

from sftphook.errors import InvalidInput, UnsafeDestination
from sftphook.webhooks.urlsafety import UrlPolicy, check_destination, check_url

STRICT = UrlPolicy()


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest",
        "https://10.1.2.3/",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://100.64.0.1/",
        "https://[fd00::1]/",
        "https://0.0.0.0/",
    ],
)
def test_private_and_special_literals_are_refused(url):
    with pytest.raises(UnsafeDestination):
        check_url(url, STRICT)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "example.com", "http://example.com/", "https://u:p@example.com/"]
)
def test_malformed_or_plain_http_urls_are_refused(url):
    with pytest.raises(InvalidInput):
        check_url(url, STRICT)


def test_allowed_networks_let_loopback_through():
    policy = UrlPolicy.from_settings(True, ["127.0.0.0/8"])
    assert check_url("http://127.0.0.1:9000/hook", policy)


async def test_a_name_resolving_to_loopback_is_refused():
    with pytest.raises(UnsafeDestination):
        await check_destination("https://localhost/hook", STRICT)
