"""Address arithmetic for validation, on integers.

``ipaddress`` objects cost microseconds each; a repo of 10,000 nodes has tens of thousands of
addresses, so the rules here parse with ``inet_pton`` and compare integers. Human-readable forms
are produced only when a rule fails.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Prefixed:
    """An address with its prefix length, e.g. ``10.20.0.11/24``."""

    version: int  # 4 or 6
    value: int  # the address as an integer
    prefixlen: int

    @property
    def bits(self) -> int:
        return 32 if self.version == 4 else 128

    @property
    def mask(self) -> int:
        return ((1 << self.prefixlen) - 1) << (self.bits - self.prefixlen)

    @property
    def network(self) -> int:
        return self.value & self.mask

    @property
    def host_bits_set(self) -> bool:
        return self.value != self.network

    def contains(self, address: Address) -> bool:
        return address.version == self.version and (address.value & self.mask) == self.network

    @property
    def address(self) -> Address:
        return Address(self.version, self.value)

    def network_text(self) -> str:
        cls = ipaddress.IPv4Network if self.version == 4 else ipaddress.IPv6Network
        return str(cls((self.network, self.prefixlen)))

    def text(self) -> str:
        return f"{self.address.text()}/{self.prefixlen}"

    @property
    def broadcast(self) -> int:
        return self.network | (((1 << self.bits) - 1) ^ self.mask)

    @property
    def is_host_route(self) -> bool:
        """/32 or /128: one address, no subnet."""
        return self.prefixlen == self.bits

    def overlaps(self, other: Prefixed) -> bool:
        if other.version != self.version:
            return False
        shorter = min(self.prefixlen, other.prefixlen)
        mask = ((1 << shorter) - 1) << (self.bits - shorter)
        return self.value & mask == other.value & mask


@dataclass(frozen=True, slots=True)
class Address:
    version: int
    value: int

    def text(self) -> str:
        return str(ipaddress.IPv4Address(self.value) if self.version == 4 else ipaddress.IPv6Address(self.value))

    @property
    def is_special(self) -> bool:
        """Never a host address of a NIC: multicast, loopback, unspecified, IPv4 "this network"
        (0.0.0.0/8), reserved (240.0.0.0/4) and the limited broadcast 255.255.255.255."""
        if self.version == 4:
            return self.value >> 24 in (0, 127) or self.value >> 28 in (0xE, 0xF)
        return self.value in (0, 1) or self.value >> 120 == 0xFF

    @property
    def is_link_local(self) -> bool:
        """fe80::/10 or 169.254.0.0/16: scoped to one link, so the same range on two links is fine."""
        if self.version == 4:
            return self.value >> 16 == 0xA9FE
        return self.value >> 118 == 0x3FA


@lru_cache(maxsize=65536)
def address(text: str) -> Address:
    if ":" in text:
        return Address(6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big"))
    return Address(4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big"))


@lru_cache(maxsize=65536)
def prefixed(text: str) -> Prefixed:
    host, _, length = text.partition("/")
    parsed = address(host)
    return Prefixed(parsed.version, parsed.value, int(length))
