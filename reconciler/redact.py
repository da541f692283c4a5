"""Keeping credentials out of every message: one scrubber for all outputs.

``scrub(text, secrets)`` removes URL user info (``https://user:pw@host`` -> ``https://***@host``),
``Authorization`` header values and every given secret value, also in the encoded forms a
library may print it in (URL-quoted, JSON- or repr-escaped). Every error leaving the Proxmox and
Git adapters and every validation message passes through it before reaching status, logs,
Events, the read API, the CLI or Git.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s\"']+@")
_HEADER = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(basic|bearer|token|PVEAPIToken)?[ =]?[^\s\"',}]+")
_MIN_SECRET = 4  # shorter values would mask ordinary words; such a secret is never safe anyway


def forms(secret: str) -> set[str]:
    """The secret and the ways it shows up when encoded."""
    out = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), json.dumps(secret)[1:-1],
           repr(secret)[1:-1]}
    return {f for f in out if len(f) >= _MIN_SECRET}


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    values: set[str] = set()
    for secret in secrets:
        if secret:
            values |= forms(secret)
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, MASK)
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    return _HEADER.sub(rf"\1{MASK}", text)
