"""Webhook signature checks: a request triggers a reconcile only when it proves the secret.

- GitHub (and Gitea/Forgejo): ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``
  (``X-Gitea-Signature`` / ``X-Forgejo-Signature``: the bare hex).
- GitLab, signed (Standard Webhooks): ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``, the key being the
  base64 after ``whsec_`` in the signing token; deliveries older than five minutes are refused.
- GitLab, legacy secret token: ``X-Gitlab-Token: <secret>``.
Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

MAX_SKEW = 300


def _hmac_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> str | None:
    """The provider whose signature holds ("github", "gitea", "gitlab"), or None."""
    if not secret:
        return None
    h = {k.lower(): v for k, v in headers.items()}
    key = secret.encode()
    github = h.get("x-hub-signature-256", "")
    if github.startswith("sha256=") and hmac.compare_digest(github[7:].lower(), _hmac_hex(key, body)):
        return "github"
    gitea = h.get("x-forgejo-signature") or h.get("x-gitea-signature")
    if gitea and hmac.compare_digest(gitea.lower(), _hmac_hex(key, body)):
        return "gitea"
    signed = h.get("webhook-signature")
    if signed and _standard_webhook(secret, h, body, now):
        return "gitlab"
    token = h.get("x-gitlab-token")
    if token is not None and hmac.compare_digest(token.encode(), key):
        return "gitlab"
    return None


def _standard_webhook(secret: str, h: Mapping[str, str], body: bytes, now: float | None) -> bool:
    delivery, stamp = h.get("webhook-id", ""), h.get("webhook-timestamp", "")
    try:
        if abs((now if now is not None else time.time()) - int(stamp)) > MAX_SKEW:
            return False
        key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    except (ValueError, binascii.Error):
        return False
    expected = base64.b64encode(hmac.new(key, f"{delivery}.{stamp}.".encode() + body, hashlib.sha256).digest())
    for part in h.get("webhook-signature", "").split():
        version, _, value = part.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return True
    return False


def sign_github(secret: str, body: bytes) -> str:
    """The header value GitHub would send (for tests and for `curl` examples in the docs)."""
    return "sha256=" + _hmac_hex(secret.encode(), body)
