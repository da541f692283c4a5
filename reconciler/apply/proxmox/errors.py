"""Typed failures of the Proxmox VE client.

Every error has a ``reason`` (stable, for CR status conditions), the ``endpoint`` it concerns,
the HTTP ``status`` and ``reason_phrase`` when the server answered, and a message for people.
Messages are built by us from non-secret parts only; anything taken from the server is scrubbed
of the credentials in use. Errors are raised ``from None`` so that no library exception (which
may hold request headers) hangs off them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class ProxmoxError(Exception):
    reason: ClassVar[str] = "ProxmoxError"

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status: int | None = None,
        reason_phrase: str | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.status = status
        self.reason_phrase = reason_phrase
        self.errors = dict(errors) if errors else None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reason={self.reason!r}, status={self.status!r}, "
            f"reason_phrase={self.reason_phrase!r}, message={self.message!r})"
        )


class ConfigurationError(ProxmoxError):
    """The endpoint, credentials or TLS settings we were given cannot work."""

    reason = "InvalidConfiguration"


class Unreachable(ProxmoxError):
    """No TCP connection, the connection was dropped, or PVE could not reach a node (595/596)."""

    reason = "Unreachable"


class TLSFailure(ProxmoxError):
    """TLS handshake failed, typically an untrusted certificate or a hostname mismatch."""

    reason = "TLSFailure"


class AuthenticationFailed(ProxmoxError):
    """401: wrong token secret, unknown token, wrong password, invalid ticket."""

    reason = "AuthenticationFailed"


class PermissionDenied(ProxmoxError):
    """403, or a privilege ``/access/permissions`` says is missing: authenticated, but the
    token/user lacks a privilege (e.g. Sys.Audit on /, VM.Audit on /vms/201). ``missing`` holds
    (path, privilege) pairs when known."""

    reason = "PermissionDenied"

    def __init__(self, message: str, *, missing: tuple[tuple[str, str], ...] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.missing = missing


class Timeout(ProxmoxError):
    """No connection or no answer within the configured timeout."""

    reason = "Timeout"


class ConnectTimeout(Timeout):
    """No connection (TCP or TLS handshake) within the connect timeout."""


class APIError(ProxmoxError):
    """Any other error answer (4xx/5xx) or an answer that is not what the PVE API returns."""

    reason = "APIError"


class CredentialsMissing(ProxmoxError):
    """The Secret named by the cluster file, or a key in it, is absent (no Proxmox call was made)."""

    reason = "CredentialsMissing"
