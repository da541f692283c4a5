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


@dataclass(frozen=True, slots=True)
class Address:
    version: int
    value: int

    def text(self) -> str:
        return str(ipaddress.IPv4Address(self.value) if self.version == 4 else ipaddress.IPv6Address(self.value))

    @property
    def is_special(self) -> bool:
        """Multicast, loopback or unspecified: never a host address of a NIC."""
        if self.version == 4:
            return self.value == 0 or self.value >> 28 == 0xE or self.value >> 24 == 127
        return self.value in (0, 1) or self.value >> 120 == 0xFF


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
