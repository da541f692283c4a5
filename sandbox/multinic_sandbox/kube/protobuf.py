"""Kubernetes protobuf request bodies: the ``k8s\\0`` envelope, ``runtime.Unknown`` and the kinds.

kubectl's typed generators (``kubectl create namespace|secret|configmap|serviceaccount|job``...)
and ``kubectl auth can-i`` send ``application/vnd.kubernetes.protobuf``. ``decode`` turns such
a body into the JSON object the apiserver would have decoded (Go ``omitempty`` rules: zero
scalars of non-pointer fields are absent, non-pointer nested messages are present), so every
later stage sees what a JSON client would have sent. Answers stay JSON, which kubectl accepts.
The field numbers live in ``protobuf_fields``.
"""

from __future__ import annotations

import base64
import functools
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from multinic_sandbox.kube.errors import bad_request
from multinic_sandbox.kube.protobuf_fields import MESSAGES

MAGIC = b"k8s\x00"
PACKAGES = {
    "v1": "core",
    "batch/v1": "batch",
    "apps/v1": "apps",
    "rbac.authorization.k8s.io/v1": "rbac",
    "authorization.k8s.io/v1": "authz",
    "policy/v1": "policy",
    "coordination.k8s.io/v1": "coord",
    "autoscaling/v1": "autoscaling",
    "meta.k8s.io/v1": "meta",
}
SCALARS = frozenset({"string", "bool", "int32", "int64", "float64", "bytes", "uint32", "uint64"})


class ProtobufError(ValueError):
    pass


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    repeated: bool
    pointer: bool
    inline: bool


@functools.cache
def message(name: str) -> dict[int, Field]:
    spec = MESSAGES.get(name)
    if spec is None:
        raise ProtobufError(f"no protobuf message {name}")
    fields: dict[int, Field] = {}
    for part in spec.split():
        number, json_name, rest = part.split(":", 2)
        flags = ""
        while rest[:1] in ("[", "?", "&"):
            step = 2 if rest.startswith("[]") else 1
            flags += rest[:step]
            rest = rest[step:]
        fields[int(number)] = Field(json_name, rest, "[]" in flags, "?" in flags, "&" in flags)
    return fields


# -- wire format ---------------------------------------------------------------------------------
def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def fields_of(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value): ints for varint/fixed, bytes for length-delimited."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            if pos + 8 > len(data):
                raise ProtobufError("truncated fixed64")
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated length-delimited field")
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            if pos + 4 > len(data):
                raise ProtobufError("truncated fixed32")
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int, bits: int = 64) -> int:
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    return value if bits == 64 else max(min(value, 2**31 - 1), -(2**31))


def _string(raw: Any) -> str:
    if not isinstance(raw, bytes):
        raise ProtobufError("expected a length-delimited string")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ProtobufError("string field is not UTF-8") from None


def _scalar(kind: str, wire: int, raw: Any) -> Any:
    if kind == "string":
        return _string(raw)
    if kind == "bytes":
        if not isinstance(raw, bytes):
            raise ProtobufError("expected bytes")
        return base64.b64encode(raw).decode()
    if kind == "bool":
        return bool(raw)
    if kind in ("int32", "int64", "uint32", "uint64"):
        if not isinstance(raw, int):
            raise ProtobufError(f"expected a varint for {kind}")
        return _signed(raw, 32 if kind == "int32" else 64) if kind.startswith("int") else raw
    if kind == "float64":
        if wire != 1:
            raise ProtobufError("expected fixed64 for a double")
        return struct.unpack("<d", raw)[0]
    raise ProtobufError(f"unknown scalar {kind}")


def _packed(kind: str, raw: bytes) -> list[Any]:
    values: list[Any] = []
    pos = 0
    while pos < len(raw):
        if kind == "float64":
            values.append(struct.unpack("<d", raw[pos:pos + 8])[0])
            pos += 8
        else:
            value, pos = _varint(raw, pos)
            values.append(_scalar(kind, 0, value))
    return values


def _time(raw: bytes) -> str | None:
    seconds = nanos = 0
    for number, _, value in fields_of(raw):
        if number == 1:
            seconds = _signed(value)
        elif number == 2:
            nanos = _signed(value, 32)
    if seconds == 0 and nanos == 0:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(raw: bytes) -> str | None:
    seconds = nanos = 0
    for number, _, value in fields_of(raw):
        if number == 1:
            seconds = _signed(value)
        elif number == 2:
            nanos = _signed(value, 32)
    if seconds == 0 and nanos == 0:
        return None
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos // 1000:06d}Z"


def _duration(raw: bytes) -> str:
    total = 0
    for number, _, value in fields_of(raw):
        if number == 1:
            total = _signed(value)
    return _go_duration(total)


def _go_duration(nanoseconds: int) -> str:
    """Go's time.Duration.String() for whole-second values, else seconds with a fraction."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    nanoseconds = abs(nanoseconds)
    hours, rest = divmod(nanoseconds, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = rest / 10**9
    text = f"{seconds:g}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _int_or_string(raw: bytes) -> int | str:
    kind, int_val, str_val = 0, 0, ""
    for number, _, value in fields_of(raw):
        if number == 1:
            kind = _signed(value)
        elif number == 2:
            int_val = _signed(value, 32)
        elif number == 3:
            str_val = _string(value)
    return str_val if kind == 1 else int_val


def _raw_json(raw: bytes) -> Any:
    import json

    for number, _, value in fields_of(raw):
        if number == 1 and value:
            try:
                return json.loads(value)
            except ValueError:
                raise ProtobufError("embedded raw object is not JSON") from None
    return {}


def _special(kind: str, raw: Any) -> Any:
    if not isinstance(raw, bytes):
        raise ProtobufError(f"expected a message for {kind}")
    if kind == "Time":
        return _time(raw)
    if kind == "MicroTime":
        return _micro_time(raw)
    if kind == "Duration":
        return _duration(raw)
    if kind == "Quantity":
        for number, _, value in fields_of(raw):
            if number == 1:
                return _string(value)
        return "0"
    if kind == "IntOrString":
        return _int_or_string(raw)
    if kind in ("RawExtension", "FieldsV1"):
        return _raw_json(raw)
    raise ProtobufError(f"unknown special type {kind}")


SPECIALS = frozenset({"Time", "MicroTime", "Duration", "Quantity", "IntOrString", "RawExtension",
                      "FieldsV1"})


def _value(kind: str, wire: int, raw: Any) -> Any:
    if kind in SCALARS:
        return _scalar(kind, wire, raw)
    if kind in SPECIALS:
        return _special(kind, raw)
    if not isinstance(raw, bytes):
        raise ProtobufError(f"expected a message for {kind}")
    return decode_message(kind, raw)


def _is_zero(value: Any) -> bool:
    return (value in ("", 0, False) and not isinstance(value, float)) or value is None


def _map_entry(kind: str, raw: Any) -> tuple[str, Any]:
    if not isinstance(raw, bytes):
        raise ProtobufError("expected a map entry")
    key, value = "", None
    for number, wire, item in fields_of(raw):
        if number == 1:
            key = _string(item)
        elif number == 2:
            value = _value(kind, wire, item)
    if value is None:
        value = {"string": "", "bytes": ""}.get(kind, {} if kind not in SPECIALS else None)
    return key, value


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    """One message as the JSON object Go's encoding/json would print for it."""
    fields = message(name)
    out: dict[str, Any] = {}
    for number, wire, raw in fields_of(data):
        spec = fields.get(number)
        if spec is None:
            continue  # unknown to this table: dropped, like a newer client's field
        if spec.type.startswith("map:"):
            key, value = _map_entry(spec.type[4:], raw)
            out.setdefault(spec.name, {})[key] = value
            continue
        if spec.inline:
            out.update(_value(spec.type, wire, raw))
            continue
        if spec.repeated:
            items = out.setdefault(spec.name, [])
            if wire == 2 and spec.type in SCALARS - {"string", "bytes"}:
                items.extend(_packed(spec.type, raw))
            else:
                items.append(_value(spec.type, wire, raw))
            continue
        value = _value(spec.type, wire, raw)
        if not spec.pointer and (spec.type in SCALARS or spec.type in SPECIALS) and _is_zero(value):
            out.pop(spec.name, None)
            continue
        out[spec.name] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A ``k8s\\0``-enveloped request body as a JSON-shaped object (apiVersion and kind set)."""
    try:
        if not body.startswith(MAGIC):
            raise ProtobufError("missing the k8s protobuf envelope prefix")
        api_version = kind = ""
        raw = b""
        encoding = ""
        for number, _, value in fields_of(body[len(MAGIC):]):
            if number == 1 and isinstance(value, bytes):
                for sub, _, item in fields_of(value):
                    if sub == 1:
                        api_version = _string(item)
                    elif sub == 2:
                        kind = _string(item)
            elif number == 2 and isinstance(value, bytes):
                raw = value
            elif number == 3:
                encoding = _string(value)
        if encoding:
            raise ProtobufError(f"unsupported contentEncoding {encoding!r}")
        package = PACKAGES.get(api_version)
        if package is None or f"{package}.{kind}" not in MESSAGES:
            raise ProtobufError(f"no protobuf decoding for {api_version} {kind}")
        obj = decode_message(f"{package}.{kind}", raw)
    except ProtobufError as exc:
        raise bad_request(f"the body of the request was in an unknown format - accepted media "
                          f"types include: application/json, application/yaml, "
                          f"application/vnd.kubernetes.protobuf: {exc}") from None
    return {"apiVersion": api_version, "kind": kind, **obj}
