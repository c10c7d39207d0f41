"""Which IP addresses an outbound request may reach, and why not.

Every address a host resolves to is classified before MAIE connects to it. The verdict names a
rule (``loopback``, ``link-local``, ``6to4``...) and whether ``allow_private`` may lift it: only
loopback, private (RFC 1918, unique local) and shared (100.64.0.0/10) ranges can be allowed, for
on-premise sources and receivers. Link-local addresses, the cloud metadata services, multicast,
unspecified, reserved and transition ranges that can tunnel to anything are always refused.

IPv6 forms that carry an IPv4 address are judged by that address: IPv4-mapped
(``::ffff:127.0.0.1``), IPv4-compatible (``::127.0.0.1``) and NAT64 (``64:ff9b::127.0.0.1``).
The tables are explicit rather than left to :mod:`ipaddress`'s ``is_private``/``is_global``,
whose answers change between Python patch releases (and which call ``fec0::/10`` global).
"""

from __future__ import annotations

import ipaddress
from typing import Final, NamedTuple

__all__ = ["METADATA_ADDRESSES", "IPAddress", "Verdict", "classify", "refusal_reason"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Verdict(NamedTuple):
    """Why an address is refused."""

    #: Short name of the rule, used in messages and logs (``loopback``, ``cloud metadata``...).
    rule: str
    #: Whether ``allow_private`` lifts the refusal (loopback, private and shared ranges only).
    private: bool


#: Cloud metadata and platform services, refused even where private addresses are allowed:
#: AWS/GCP/Azure/OpenStack 169.254.169.254 and AWS's IPv6 fd00:ec2::254 (with its DNS and time
#: services), AWS ECS task metadata, Alibaba 100.100.100.200, Azure's WireServer 168.63.129.16 and
#: Oracle's legacy 192.0.0.192.
METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "fd00:ec2::123",
        "100.100.100.200",
        "168.63.129.16",
        "192.0.0.192",
    )
)


def _nets(*cidrs: str) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


#: Always refused, in the order they are tried (the first match names the rule).
_NEVER: Final = (
    ("unspecified", _nets("0.0.0.0/8", "::/128")),
    ("link-local", _nets("169.254.0.0/16", "fe80::/10")),
    ("multicast", _nets("224.0.0.0/4", "ff00::/8")),
    ("reserved", _nets("240.0.0.0/4", "192.0.0.0/24", "100::/64", "2001:db8::/32", "3fff::/20")),
    ("documentation", _nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")),
    ("benchmarking", _nets("198.18.0.0/15", "2001:2::/48")),
    # 6to4 and Teredo reach whatever IPv4 address they embed through a relay.
    ("6to4", _nets("2002::/16", "192.88.99.0/24")),
    ("Teredo", _nets("2001::/32")),
    ("site-local", _nets("fec0::/10")),
)

#: Refused unless ``allow_private`` is set.
_PRIVATE: Final = (
    ("loopback", _nets("127.0.0.0/8", "::1/128")),
    ("private", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "64:ff9b:1::/48")),
    ("shared", _nets("100.64.0.0/10")),
)

_MAPPED: Final = ipaddress.ip_network("::ffff:0:0/96")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE: Final = ipaddress.ip_network("::/96")


def _carried_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, bool] | None:
    """The IPv4 address an IPv6 one carries, and whether the form is the deprecated compatible one."""
    inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _MAPPED or address in _NAT64:
        return inner, False
    if address in _COMPATIBLE and int(address) > 1:
        return inner, True
    return None


def _table_verdict(address: IPAddress) -> Verdict | None:
    for rule, networks in _NEVER:
        if any(address in net for net in networks):
            return Verdict(rule, private=False)
    for rule, networks in _PRIVATE:
        if any(address in net for net in networks):
            return Verdict(rule, private=True)
    # Whatever else the registries do not call globally reachable (future reservations).
    if not address.is_global or address.is_reserved:
        return Verdict("reserved", private=False)
    return None


def classify(address: IPAddress) -> Verdict | None:
    """Judge one address.

    Args:
        address: an IPv4 or IPv6 address (a scope id such as ``%eth0`` already removed).

    Returns:
        None for an address on the public internet, else the rule that refuses it.
    """
    if address in METADATA_ADDRESSES:
        return Verdict("cloud metadata", private=False)
    carried = _carried_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if carried is None:
        return _table_verdict(address)
    inner, compatible = carried
    verdict = classify(inner)
    if compatible:
        # Deprecated (RFC 4291) and no way to reach the IPv4 host: refused whatever it holds,
        # under the carried address's rule where it has one.
        return Verdict(verdict.rule if verdict else "IPv4-compatible", private=False)
    return verdict


def refusal_reason(address: IPAddress, *, allow_private: bool = False) -> str | None:
    """The rule that refuses ``address``, or None if it may be called.

    Args:
        address: the address to judge.
        allow_private: whether loopback, private and shared addresses are allowed.
    """
    verdict = classify(address)
    if verdict is None or (verdict.private and allow_private):
        return None
    return verdict.rule
