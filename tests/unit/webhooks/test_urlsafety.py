"""The URL safety corpus: every class of destination that must be refused, and what passes."""

import ipaddress
import socket

import pytest

from sftphook.errors import InvalidInput, UnsafeDestination
from sftphook.webhooks.urlsafety import (
    UrlPolicy,
    check_destination,
    check_url,
    forbidden_reason,
    parse_host_literal,
    resolve_safe,
    system_lookup,
)
from tests.unit.webhooks.fake_dns import HostsLookup

STRICT = UrlPolicy()
LOOPBACK_ALLOWED = UrlPolicy.from_settings(True, ["127.0.0.0/8"])

# (host as written in a URL, a word the refusal must name)
REFUSED_HOSTS = [
    # private
    ("10.0.0.1", "private"),
    ("10.255.255.254", "private"),
    ("172.16.5.4", "private"),
    ("172.31.255.1", "private"),
    ("192.168.1.1", "private"),
    # loopback
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("[::1]", "loopback"),
    ("[0:0:0:0:0:0:0:1]", "loopback"),
    # link-local, cloud metadata
    ("169.254.169.254", "link-local"),
    ("[fe80::1]", "link-local"),
    ("[fe80::1%25eth0]", "link-local"),
    ("[fe80::a9fe:a9fe]", "link-local"),
    # CGNAT
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    # unspecified, multicast, reserved, broadcast, documentation, benchmarking
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("[::]", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("[ff02::1]", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("192.0.2.10", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("192.0.0.8", "IETF"),
    ("[2001:db8::1]", "documentation"),
    ("[100::1]", "discard"),
    # IPv6 unique-local and site-local
    ("[fd00::1]", "unique-local"),
    ("[fc00::1]", "unique-local"),
    ("[fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]", "unique-local"),
    ("[fec0::1]", "site-local"),
    # IPv4-mapped, in both spellings and in upper case
    ("[::ffff:127.0.0.1]", "loopback"),
    ("[::ffff:7f00:1]", "loopback"),
    ("[::FFFF:127.0.0.1]", "loopback"),
    ("[0:0:0:0:0:ffff:7f00:1]", "loopback"),
    ("[::ffff:10.0.0.1]", "private"),
    ("[::ffff:169.254.169.254]", "link-local"),
    ("[::ffff:100.64.0.1]", "CGNAT"),
    # IPv4-compatible (deprecated)
    ("[::127.0.0.1]", "IPv4-compatible"),
    ("[::8.8.8.8]", "IPv4-compatible"),
    # 6to4, NAT64 and Teredo with an embedded IPv4 address
    ("[2002:7f00:1::]", "loopback"),
    ("[2002:7f00:1::1]", "loopback"),
    ("[2002:a9fe:a9fe::1]", "link-local"),
    ("[2002:a00:1::]", "private"),
    ("[64:ff9b::7f00:1]", "loopback"),
    ("[64:ff9b::127.0.0.1]", "loopback"),
    ("[64:ff9b::10.0.0.1]", "private"),
    ("[64:ff9b::169.254.169.254]", "link-local"),
    ("[64:ff9b:1::a00:1]", "NAT64"),
    ("[2001:0:4136:e378:8000:63bf:80ff:fffe]", "Teredo"),
    ("[2001::1]", "Teredo"),
    # outside global unicast
    ("[4000::1]", "global unicast"),
    # decimal, octal, hexadecimal and short IPv4 spellings
    ("2130706433", "loopback"),
    ("0177.0.0.1", "loopback"),
    ("0x7f.1", "loopback"),
    ("0x7F.1", "loopback"),
    ("127.1", "loopback"),
    ("127.0.1", "loopback"),
    ("0x7f000001", "loopback"),
    ("017700000001", "loopback"),
    ("0x7f.0x0.0x0.0x1", "loopback"),
    ("127.000.000.001", "loopback"),
    ("2852039166", "link-local"),
    ("0xa9fea9fe", "link-local"),
    ("0251.0376.0251.0376", "link-local"),
    ("169.254.43518", "link-local"),
    ("10.1", "private"),
    ("0", "unspecified"),
    # trailing dots
    ("127.0.0.1.", "loopback"),
    ("169.254.169.254.", "link-local"),
    ("0x7f.1.", "loopback"),
    # loopback names (RFC 6761), answered by resolvers without DNS
    ("localhost", "loopback"),
    ("LOCALHOST", "loopback"),
    ("localhost.", "loopback"),
    ("api.localhost", "loopback"),
]


@pytest.mark.parametrize(("host", "word"), REFUSED_HOSTS)
def test_forbidden_destinations_are_refused_with_their_reason(host, word):
    with pytest.raises(UnsafeDestination) as caught:
        check_url(f"https://{host}/hook", STRICT)
    assert word.lower() in caught.value.message.lower()
    assert caught.value.to_problem()["errors"][0]["field"] == "url"


@pytest.mark.parametrize(("host", "word"), REFUSED_HOSTS)
async def test_the_connect_time_resolver_refuses_the_same_hosts(host, word):
    lookup = HostsLookup({"localhost": ["127.0.0.1"], "api.localhost": ["127.0.0.1"]})
    bare = host[1:-1] if host.startswith("[") else host
    with pytest.raises(UnsafeDestination):
        await resolve_safe(bare.replace("%25", "%"), 443, STRICT, lookup)


@pytest.mark.parametrize(
    "host",
    [
        "8.8.8.8",
        "1.1.1.1:8443",
        "[2606:4700:4700::1111]",
        "[2606:4700:4700::1111]:8443",
        "EXAMPLE.com",
        "[::ffff:8.8.8.8]",
        "[64:ff9b::8.8.8.8]",
        "[2002:808:808::1]",
        "100.63.255.255",
        "100.128.0.1",
        "172.32.0.1",
        "example.com",
        "example.com.",
        "hooks.example.com:8443",
        "my_host.example.com",
        "bücher.example",
        "xn--bcher-kva.example",
        "localhost.example.com",
    ],
)
def test_public_destinations_pass(host):
    url = f"https://{host}/hook?x=1"
    assert check_url(url, STRICT) == url


def test_an_unusual_spelling_of_a_public_address_is_refused_with_the_usual_one():
    with pytest.raises(UnsafeDestination, match=r"write 8\.8\.8\.8"):
        check_url("https://0x08080808/", STRICT)
    with pytest.raises(UnsafeDestination, match=r"write 8\.8\.8\.8"):
        check_url("https://8.8.8.8./", STRICT)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "example.com",
        "//example.com/",
        "https:///path",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http://example.com/",
        "https://u:p@example.com/",
        "https://user@example.com/",
        "https://example.com@127.0.0.1/",
        "https://exa mple.com/",
        "https://example.com/\t",
        "https://exa\nmple.com/",
        "https://999.1.1.1/",
        "https://1.2.3.4.5/",
        "https://08.1.1.1/",
        "https://256.256.256.256/",
        "https://%31%32%37.0.0.1/",
        "https://a..b/",
        "https://-a.example/",
        "https://a-.example/",
        "https://" + "a" * 64 + ".example/",
        "https://" + ".".join(["abcdefgh"] * 30) + "/",
        "https://ex\\ample.com/",
        "https://[::1/",
        "https://[zz::1]/",
        "https://example.com:0/",
        "https://example.com:99999/",
        "https://example.com:-1/",
        "https://example.com/" + "a" * 2100,
    ],
)
def test_malformed_or_plain_http_urls_are_refused(url):
    with pytest.raises(InvalidInput):
        check_url(url, STRICT)


def test_allowed_networks_let_a_listed_network_through():
    for url in (
        "http://127.0.0.1:9000/hook",
        "http://127.5.5.5/",
        "https://[::ffff:127.0.0.1]/",
        "https://[64:ff9b::7f00:1]/",
        "http://localhost:9000/",
    ):
        assert check_url(url, LOOPBACK_ALLOWED) == url
    for url in ("http://10.0.0.1/", "https://[::1]/", "https://169.254.169.254/"):
        with pytest.raises(UnsafeDestination):
            check_url(url, LOOPBACK_ALLOWED)


def test_allowed_networks_do_not_excuse_unusual_spellings():
    with pytest.raises(UnsafeDestination, match=r"write 127\.0\.0\.1"):
        check_url("http://0x7f.1/", LOOPBACK_ALLOWED)


def test_plain_http_needs_the_operator():
    with pytest.raises(InvalidInput, match="https"):
        check_url("http://example.com/", STRICT)
    assert check_url("http://example.com/", UrlPolicy(allow_http=True))


def test_url_checks_are_pure(monkeypatch):
    def no_dns(*args, **kwargs):
        raise AssertionError("check_url must not resolve names")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert check_url("https://hooks.example.com/x", STRICT)


def test_every_address_python_calls_private_is_refused():
    samples = [
        "0.0.0.1",
        "10.9.8.7",
        "127.0.0.2",
        "169.254.1.1",
        "172.20.0.1",
        "192.0.0.170",
        "192.0.2.200",
        "192.168.200.1",
        "198.19.255.255",
        "198.51.100.5",
        "203.0.113.9",
        "240.1.2.3",
        "::1",
        "::",
        "::ffff:1.2.3.4",
        "100::5",
        "2001:2::1",
        "2001:10::1",
        "2001:db8::5",
        "fc00::5",
        "fe80::5",
    ]
    for text in samples:
        address = ipaddress.ip_address(text)
        if address.is_private and not (
            isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped
        ):
            assert forbidden_reason(address, STRICT), text


def test_host_literals_are_parsed_in_every_spelling():
    expected = ipaddress.ip_address("127.0.0.1")
    for spelling in ("2130706433", "0177.0.0.1", "0x7f.1", "127.1", "[::ffff:7f00:1]"):
        address = parse_host_literal(spelling)
        mapped = getattr(address, "ipv4_mapped", None)
        assert (mapped or address) == expected, spelling
    assert parse_host_literal("example.com") is None
    assert parse_host_literal("127.0.0.1 x") is None


async def test_names_that_resolve_to_forbidden_addresses_are_refused():
    lookup = HostsLookup(
        {
            "internal.example": ["10.0.0.5"],
            "metadata.example": ["169.254.169.254"],
            "mixed.example": ["8.8.8.8", "192.168.1.1"],
            "ula.example": ["fd12:3456::1"],
            "mapped.example": ["::ffff:10.0.0.1"],
            "cgnat.example": ["100.64.1.1"],
        }
    )
    for name, word in (
        ("internal.example", "10.0.0.5 is a private"),
        ("internal.example.", "private"),
        ("INTERNAL.example", "private"),
        ("metadata.example", "link-local"),
        ("mixed.example", "192.168.1.1 is a private"),
        ("ula.example", "unique-local"),
        ("mapped.example", "IPv4-mapped form of 10.0.0.1"),
        ("cgnat.example", "CGNAT"),
    ):
        with pytest.raises(UnsafeDestination, match=word):
            await check_destination(f"https://{name}/hook", STRICT, lookup=lookup)


async def test_a_name_with_only_public_answers_passes():
    lookup = HostsLookup({"hooks.example": ["8.8.8.8", "2606:4700:4700::1111", "8.8.8.8"]})
    addresses = await check_destination("https://hooks.example/x", STRICT, lookup=lookup)
    assert [str(a) for a in addresses] == ["8.8.8.8", "2606:4700:4700::1111"]


async def test_an_unresolvable_name_is_refused():
    with pytest.raises(UnsafeDestination, match="cannot resolve nowhere.example"):
        await check_destination("https://nowhere.example/", STRICT, lookup=HostsLookup({}))


async def test_the_system_resolver_is_the_default_lookup():
    assert ipaddress.ip_address("127.0.0.1") in await system_lookup("localhost", 443)
    with pytest.raises(UnsafeDestination):
        await check_destination("https://localhost/hook", STRICT)
    both = UrlPolicy.from_settings(True, ["127.0.0.0/8", "::1/128"])
    addresses = await check_destination("http://localhost:9/", both)
    assert ipaddress.ip_address("127.0.0.1") in addresses
