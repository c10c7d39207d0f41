"""Outbound address rules, judged on addresses and resolver answers alone (no network)."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from structlog.testing import capture_logs

from maie.errors import (
    CallbackRefusedError,
    FetchConnectionError,
    FetchInvalidUrlError,
    FetchRefusedAddressError,
    FetchUnresolvableError,
)
from maie.outbound import AddressRules, classify, redact_url, refusal_reason
from maie.pipeline.fetch import fetch_rules


def ip(text):
    return ipaddress.ip_address(text)


class TestClassify:
    """Each address gets the rule that refuses it, whatever the Python patch release says."""

    @pytest.mark.parametrize(
        ("address", "rule", "private"),
        [
            ("127.0.0.1", "loopback", True),
            ("127.255.0.9", "loopback", True),
            ("::1", "loopback", True),
            ("10.1.2.3", "private", True),
            ("172.31.255.1", "private", True),
            ("192.168.0.10", "private", True),
            ("fd12:3456::1", "private", True),
            ("100.64.0.1", "shared", True),
            ("0.0.0.0", "unspecified", False),  # noqa: S104 - the address under test
            ("0.1.2.3", "unspecified", False),
            ("::", "unspecified", False),
            ("169.254.1.1", "link-local", False),
            ("fe80::1", "link-local", False),
            ("febf::1", "link-local", False),
            ("169.254.169.254", "cloud metadata", False),
            ("fd00:ec2::254", "cloud metadata", False),
            ("100.100.100.200", "cloud metadata", False),
            ("224.0.0.251", "multicast", False),
            ("ff02::1", "multicast", False),
            ("240.0.0.1", "reserved", False),
            ("255.255.255.255", "reserved", False),
            ("192.0.2.1", "documentation", False),
            ("2001:db8::1", "reserved", False),
            ("198.18.0.1", "benchmarking", False),
            ("2002:c0a8:0101::1", "6to4", False),
            ("2002:0808:0808::1", "6to4", False),
            ("192.88.99.1", "6to4", False),
            ("2001:0:4136:e378::1", "Teredo", False),
            ("fec0::1", "site-local", False),
            ("feff::1", "site-local", False),
        ],
    )
    def test_refused_forms(self, address, rule, private):
        assert classify(ip(address)) == (rule, private)

    @pytest.mark.parametrize(
        ("address", "rule"),
        [
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::ffff:a9fe:a9fe", "cloud metadata"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata"),
            ("64:ff9b::10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("::10.0.0.1", "private"),
            ("::8.8.8.8", "IPv4-compatible"),
        ],
    )
    def test_ipv6_forms_are_judged_by_the_ipv4_they_carry(self, address, rule):
        assert refusal_reason(ip(address)) == rule

    def test_ipv4_compatible_is_never_allowed(self):
        """The deprecated form reaches no IPv4 host: allow_private does not make it usable."""
        assert refusal_reason(ip("::10.0.0.1"), allow_private=True) == "private"
        assert refusal_reason(ip("::ffff:10.0.0.1"), allow_private=True) is None

    @pytest.mark.parametrize(
        "address",
        [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2a00:1450::1",
        ],
    )
    def test_public_addresses_pass(self, address):
        assert classify(ip(address)) is None

    @pytest.mark.parametrize(
        "address",
        [
            "169.254.169.254",
            "fd00:ec2::254",
            "fe80::1",
            "169.254.0.1",
            "2002:7f00:1::",
            "fec0::1",
            "224.0.0.1",
        ],
    )
    def test_allow_private_never_allows_link_local_or_metadata(self, address):
        assert refusal_reason(ip(address), allow_private=True) is not None

    @pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.0.0.1", "fd12::1", "100.64.1.1"])
    def test_allow_private_allows_loopback_and_private(self, address):
        assert refusal_reason(ip(address)) is not None
        assert refusal_reason(ip(address), allow_private=True) is None


class TestRules:
    """Refusals name the host and the rule, raise the caller's error and never show the address."""

    def test_every_address_must_pass(self):
        rules = fetch_rules(allow_private=False)
        rules.check("cdn.example", [ip("93.184.215.14"), ip("2606:4700:4700::1111")])
        with pytest.raises(FetchRefusedAddressError, match="private"):
            rules.check("cdn.example", [ip("93.184.215.14"), ip("10.9.8.7")])
        with pytest.raises(FetchUnresolvableError, match="no address"):
            rules.check("cdn.example", [])

    def test_message_names_host_and_rule_and_the_log_has_the_address(self):
        rules = fetch_rules(allow_private=False)
        with capture_logs() as logs, pytest.raises(FetchRefusedAddressError) as refused:
            rules.check("vm", [ip("127.0.0.1")])
        detail = refused.value.detail
        assert "'vm'" in detail
        assert "loopback" in detail
        assert "MAIE_FETCH_ALLOW_PRIVATE=true" in detail, "says what would allow it"
        assert "127.0.0.1" not in detail
        assert "127.0.0.1" not in str(refused.value.extra)
        assert refused.value.code == "fetch_refused_address"
        (line,) = [entry for entry in logs if entry["event"] == "outbound.refused"]
        assert line["address"] == "127.0.0.1"
        assert line["host"] == "vm"

    def test_rules_that_no_setting_lifts_say_so(self):
        with pytest.raises(FetchRefusedAddressError, match="never calls those") as refused:
            fetch_rules(allow_private=True).check("meta", [ip("fd00:ec2::254")])
        assert "fd00:ec2::254" not in refused.value.detail
        assert "ALLOW_PRIVATE" not in refused.value.detail, "no setting would help"

    def test_resolver_failures(self):
        rules = fetch_rules(allow_private=False)

        def missing(host, port):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        def down(host, port):
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

        with pytest.raises(FetchUnresolvableError, match="cannot be resolved") as gone:
            rules.resolve("nope.example", 443, missing)
        assert not gone.value.retryable
        with pytest.raises(FetchConnectionError) as later:
            rules.resolve("nope.example", 443, down)
        assert later.value.retryable, "a resolver that is down for now is worth a retry"

    def test_resolve_checks_what_the_resolver_answers(self):
        rules = fetch_rules(allow_private=False)
        assert rules.resolve("cdn.example", 80, lambda _h, _p: [ip("8.8.8.8")]) == [ip("8.8.8.8")]
        with pytest.raises(FetchRefusedAddressError, match=r"'cdn\.example' resolves to a link-local"):
            rules.resolve("cdn.example", 80, lambda _h, _p: [ip("8.8.8.8"), ip("fe80::1")])

    @pytest.mark.parametrize(
        ("url", "words"),
        [
            ("file:///etc/passwd", "http:// or https://"),
            ("ftp://example.com/a.mp3", "http:// or https://"),
            ("gopher://example.com/", "http:// or https://"),
            ("http://", "no host"),
            ("https://" + "a" * 3000 + ".example/", "longer than"),
        ],
    )
    def test_url_shape(self, url, words):
        with pytest.raises(FetchInvalidUrlError, match=words):
            fetch_rules(allow_private=False).parse_url(url)

    def test_scheme_refusal_does_not_echo_credentials(self):
        with pytest.raises(FetchInvalidUrlError) as refused:
            fetch_rules(allow_private=False).parse_url("ftp://alice:hunter2@example.com/a.mp3")
        assert "hunter2" not in refused.value.detail

    def test_fragments(self):
        """A fetch drops the fragment (never sent); a webhook URL with one is refused, as before."""
        parsed = fetch_rules(allow_private=False).parse_url("https://video.example/watch#t=30")
        assert str(parsed) == "https://video.example/watch"
        webhook = AddressRules(subject="callback_url", refused=CallbackRefusedError)
        with pytest.raises(CallbackRefusedError, match="fragment"):
            webhook.parse_url("https://hooks.example/#x")

    @pytest.mark.parametrize(
        ("url", "rule"),
        [
            ("http://2130706433/x", "a loopback"),
            ("http://0x7f.1/x", "a loopback"),
            ("http://017700000001/x", "a loopback"),
            ("http://127.1/x", "a loopback"),
            ("http://[::ffff:7f00:1]/x", "a loopback"),
            ("http://0/x", "an unspecified"),
            ("http://[::ffff:a9fe:a9fe]/latest/meta-data", "a cloud metadata"),
        ],
    )
    async def test_other_spellings_of_an_address_resolve_to_it(self, url, rule):
        """Decimal, hex, octal and short IPv4 forms are judged by what the resolver makes of them."""
        with pytest.raises(FetchRefusedAddressError, match=f"resolves to {rule} address"):
            await fetch_rules(allow_private=False).check_url(url)

    async def test_submit_time_check_resolves_the_name(self):
        with pytest.raises(FetchRefusedAddressError, match="'localhost' resolves to a loopback") as refused:
            await fetch_rules(allow_private=False).check_url("http://localhost:8000/clip.wav")
        assert "127.0.0.1" not in refused.value.detail
        assert "::1" not in refused.value.detail
        parsed = await fetch_rules(allow_private=True).check_url(" http://localhost:8000/clip.wav ")
        assert parsed.host == "localhost"
        with pytest.raises(FetchRefusedAddressError, match="link-local"):
            await fetch_rules(allow_private=True).check_url("http://[fe80::1]/x")


class TestRedaction:
    """What is recorded of a URL: no userinfo, no fragment, no secret query values."""

    @pytest.mark.parametrize(
        ("url", "recorded"),
        [
            ("https://alice:hunter2@files.example/a.mp3", "https://files.example/a.mp3"),
            ("https://files.example/a.mp3#t=3", "https://files.example/a.mp3"),
            (
                "https://b.s3.amazonaws.com/r.m4a?X-Amz-Credential=AKIA1&X-Amz-Signature=ab12&x=1",
                "https://b.s3.amazonaws.com/r.m4a?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&x=1",
            ),
            (
                "https://acct.blob.core.windows.net/c/r.wav?sv=2022&sig=Zm9v%2Bbar",
                "https://acct.blob.core.windows.net/c/r.wav?sv=2022&sig=REDACTED",
            ),
            (
                "https://drive.example/uc?id=FILE1&export=download",
                "https://drive.example/uc?id=FILE1&export=download",
            ),
            (
                "https://api.example/a?access_token=t&api_key=k",
                "https://api.example/a?access_token=REDACTED&api_key=REDACTED",
            ),
        ],
    )
    def test_recorded_form(self, url, recorded):
        assert redact_url(url) == recorded
