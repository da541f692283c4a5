"""String formats a CRD schema may declare, and the checks a real apiserver runs for them."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable

_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{2}[:-]){7}[0-9A-Fa-f]{2}$")
_HOSTNAME_LABEL = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$")
_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_DATE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h|d|w))+$")
_HEXCOLOR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_BSON = re.compile(r"^[0-9a-fA-F]{24}$")
_SHORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LONG_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _ip(version: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            return ipaddress.ip_address(value).version == version
        except ValueError:
            return False

    return check


def _cidr(value: str) -> bool:
    if "/" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _hostname(value: str) -> bool:
    if not value or len(value) > 253:
        return False
    return all(_HOSTNAME_LABEL.match(label) for label in value.rstrip(".").split("."))


def _uri(value: str) -> bool:
    return bool(value) and not any(ch.isspace() or ord(ch) < 32 for ch in value)


def _byte(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _always(value: str) -> bool:
    return True


CHECKS: dict[str, Callable[[str], bool]] = {
    "mac": lambda v: bool(_MAC.match(v)),
    "cidr": _cidr,
    "ipv4": _ip(4),
    "ipv6": _ip(6),
    "hostname": _hostname,
    "date-time": lambda v: bool(_DATE_TIME.match(v)),
    "datetime": lambda v: bool(_DATE_TIME.match(v)),
    "date": lambda v: bool(_DATE.match(v)),
    "uri": _uri,
    "email": lambda v: bool(_EMAIL.match(v)),
    "uuid": lambda v: bool(_UUID.match(v)),
    "uuid3": lambda v: bool(_UUID.match(v)),
    "uuid4": lambda v: bool(_UUID.match(v)),
    "uuid5": lambda v: bool(_UUID.match(v)),
    "byte": _byte,
    "duration": lambda v: bool(_DURATION.match(v)),
    "hexcolor": lambda v: bool(_HEXCOLOR.match(v)),
    "bsonobjectid": lambda v: bool(_BSON.match(v)),
    "k8s-short-name": lambda v: bool(_SHORT_NAME.match(v)),
    "k8s-long-name": lambda v: len(v) <= 253 and bool(_LONG_NAME.match(v)),
    # accepted by the apiserver without (meaningful) string checks
    "password": _always,
    "isbn": _always,
    "isbn10": _always,
    "isbn13": _always,
    "creditcard": _always,
    "ssn": _always,
    "rgbcolor": _always,
    "int32": _always,
    "int64": _always,
    "float": _always,
    "double": _always,
}

SUPPORTED = frozenset(CHECKS)


def check(fmt: str, value: str) -> bool:
    """True when ``value`` satisfies ``fmt`` (unknown formats never fail)."""
    return CHECKS.get(fmt, _always)(value)
