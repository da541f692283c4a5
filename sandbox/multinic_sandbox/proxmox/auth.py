"""Authentication and privilege checks the way pveproxy does them.

Order (pve-http-server ``auth_handler``): a ticket from the ``PVEAuthCookie`` cookie or an
``Authorization: PVEAuthCookie=...`` header wins; otherwise ``Authorization: PVEAPIToken=...``.
Failures raise ``AuthError`` whose message is what PVE puts in the 401 reason phrase.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from multinic_sandbox.proxmox.topology import Acl, Topology, User

TICKET_LIFETIME = 7200  # seconds, as PVE


class AuthError(Exception):
    """401: the message becomes the reason phrase."""


class PermissionError403(Exception):
    """403 ``Permission check failed (<path>, <privilege>)``."""

    def __init__(self, path: str, privilege: str) -> None:
        super().__init__(f"Permission check failed ({path}, {privilege})")


@dataclass(frozen=True)
class Principal:
    """Who is calling. ``kind`` is ``ticket`` or ``token``; ``name`` is userid or tokenid."""

    kind: str
    name: str
    user: User
    token_acl: Acl | None = None

    def privileges_at(self, path: str) -> frozenset[str]:
        privs = acl_lookup(self.user.privileges, path)
        if self.kind == "token" and self.token_acl is not None:
            privs &= acl_lookup(self.token_acl, path)  # privsep=1: intersection
        return privs

    def has(self, path: str, privilege: str) -> bool:
        return privilege in self.privileges_at(path)

    def require(self, path: str, privilege: str) -> None:
        if not self.has(path, privilege):
            raise PermissionError403(path, privilege)


def principal_for(topology: Topology, name: str) -> Principal | None:
    """The user ``user@realm`` or the token ``user@realm!name`` (no secret checked)."""
    userid, bang, token_name = name.partition("!")
    user = topology.user(userid)
    if user is None:
        return None
    if not bang:
        return Principal(kind="ticket", name=userid, user=user)
    token = user.token(token_name)
    if token is None:
        return None
    return Principal(kind="token", name=name, user=user, token_acl=token.privileges)


def acl_lookup(acl: Acl, path: str) -> frozenset[str]:
    """Propagating ACLs: the most specific path that has an entry decides."""
    parts = [p for p in path.split("/") if p]
    for depth in range(len(parts), -1, -1):
        candidate = "/" + "/".join(parts[:depth])
        if candidate in acl:
            return acl[candidate]
    return frozenset()


class TicketAuthority:
    """Issues and verifies tickets and CSRF prevention tokens (HMAC-signed, per sandbox run)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._issued: set[str] = set()
        self._lock = threading.Lock()

    def _sign(self, data: str, size: int) -> str:
        digest = hmac.new(self._key, data.encode(), hashlib.sha512).digest()
        return base64.b64encode((digest * 6)[:size]).decode()

    def issue(self, userid: str) -> tuple[str, str]:
        stamp = f"{int(time.time()):08X}"
        ticket = f"PVE:{userid}:{stamp}::{self._sign(f'PVE:{userid}:{stamp}', 256)}"
        csrf = f"{stamp}:{self._sign(f'CSRF:{userid}:{stamp}', 32).rstrip('=')}"
        with self._lock:
            self._issued.update((ticket, csrf))
        return ticket, csrf

    def verify_ticket(self, ticket: str) -> str:
        """Return the userid of a valid ticket or raise ``AuthError``."""
        try:
            prefix, userid, stamp, _empty, signature = ticket.split(":", 4)
            age = time.time() - int(stamp, 16)
        except ValueError:
            raise AuthError("permission denied - invalid PVE ticket") from None
        expected = self._sign(f"{prefix}:{userid}:{stamp}", 256)
        if prefix != "PVE" or not hmac.compare_digest(signature, expected):
            raise AuthError("permission denied - invalid PVE ticket")
        if age > TICKET_LIFETIME or age < -300:
            raise AuthError("permission denied - invalid PVE ticket")
        return userid

    def verify_csrf(self, userid: str, token: str | None) -> None:
        try:
            stamp, signature = (token or "").split(":", 1)
            expected = self._sign(f"CSRF:{userid}:{stamp}", 32).rstrip("=")
        except ValueError:
            expected, signature = "x", ""
        if not hmac.compare_digest(signature, expected):
            raise AuthError("Permission denied - invalid csrf token")

    def issued_secrets(self) -> list[str]:
        """Every ticket and CSRF token handed out (for leak scans)."""
        with self._lock:
            return sorted(self._issued)


def login(topology: Topology, tickets: TicketAuthority, username: str, password: str) -> User:
    """``POST /access/ticket``: password, or a valid ticket of the same user (renewal)."""
    user = topology.user(username)
    if user is None or not user.enabled:
        raise AuthError("authentication failure")
    if password.startswith("PVE:"):
        try:
            if tickets.verify_ticket(password) == username:
                return user
        except AuthError:
            pass
        raise AuthError("authentication failure")
    if not hmac.compare_digest(password.encode(), user.password.encode()):
        raise AuthError("authentication failure")
    return user


def ticket_from_request(cookie_header: str | None, authorization: str | None) -> str | None:
    if cookie_header:
        cookie: SimpleCookie = SimpleCookie()
        with contextlib.suppress(CookieError):
            cookie.load(cookie_header)
        if "PVEAuthCookie" in cookie:
            return cookie["PVEAuthCookie"].value
    if authorization and authorization.startswith("PVEAuthCookie="):
        return authorization.removeprefix("PVEAuthCookie=")
    return None


def authenticate(
    topology: Topology,
    tickets: TicketAuthority,
    *,
    method: str,
    cookie_header: str | None,
    authorization: str | None,
    csrf_header: str | None,
) -> Principal:
    """The caller of an API request, or ``AuthError`` with PVE's message."""
    ticket = ticket_from_request(cookie_header, authorization)
    if ticket is None and authorization and authorization.startswith("PVEAPIToken="):
        return _verify_token(topology, authorization.removeprefix("PVEAPIToken="))
    if not ticket:
        raise AuthError("No ticket")
    userid = tickets.verify_ticket(ticket)
    user = topology.user(userid)
    if user is None or not user.enabled:
        raise AuthError(f"user '{userid}' does not exist")
    if method != "GET":
        tickets.verify_csrf(userid, csrf_header)
    return Principal(kind="ticket", name=userid, user=user)


def _verify_token(topology: Topology, value: str) -> Principal:
    tokenid, sep, secret = value.rpartition("=")
    if not sep or not tokenid:
        raise AuthError("no tokenid specified")
    userid, bang, name = tokenid.partition("!")
    if not bang or not name or "@" not in userid:
        raise AuthError(f"'{tokenid}' is not a valid token ID - not able to split into user and token parts")
    user = topology.user(userid)
    if user is None:
        raise AuthError(f"user '{userid}' does not exist")
    if not user.enabled:
        raise AuthError(f"user '{userid}' is disabled")
    token = user.token(name)
    if token is None:
        raise AuthError(f"no such token '{name}' for user '{userid}'")
    if not hmac.compare_digest(secret.encode(), token.secret.encode()):
        raise AuthError("invalid token value!")
    return Principal(kind="token", name=tokenid, user=user, token_acl=token.privileges)


# Capability groups of the ticket response ("cap"): which privileges PVE reports where.
_CAP_GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "vms": ("/vms", ("VM.",)),
    "storage": ("/storage", ("Datastore.",)),
    "access": ("/access", ("User.", "Group.", "Realm.")),
    "nodes": ("/nodes", ("Sys.",)),
    "dc": ("/", ("Sys.Audit", "SDN.")),
    "sdn": ("/sdn", ("SDN.",)),
    "mapping": ("/mapping", ("Mapping.",)),
}


def capabilities(user: User) -> dict[str, dict[str, int]]:
    cap: dict[str, dict[str, int]] = {}
    for group, (path, prefixes) in _CAP_GROUPS.items():
        privs = acl_lookup(user.privileges, path)
        cap[group] = {p: 1 for p in sorted(privs) if p.startswith(prefixes) or p == "Permissions.Modify"}
    return cap
