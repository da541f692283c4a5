"""A Proxmox VE API client on proxmoxer (https backend) for registering clusters and reading VMs.

Inputs are plain values (the caller reads them from a Kubernetes Secret)::

    client = ProxmoxClient(
        "https://pve1.example:8006",
        token_id="reconciler@pve!ci", token_secret="...",   # or username=/password= (ticket)
        ca_bundle=pem_bytes,                                 # or a path; None = system CAs
    )
    info = client.verify()        # ClusterInfo(version, cluster_name, quorate, nodes, ...)
    where = client.find_vm(101)   # VmLocation(node="pve1", ...) or None
    config = client.vm_config(where.node, 101)   # VmConfig(nics=(VmNic(...), ...))

All failures are ``errors.ProxmoxError`` subclasses; none of them, and nothing this module logs,
contains the token secret, the password, the ticket or the CSRF token.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from proxmoxer import AuthenticationError, ProxmoxAPI, ResourceException

from reconciler.apply.proxmox.errors import (
    APIError,
    AuthenticationFailed,
    ConfigurationError,
    ConnectTimeout,
    PermissionDenied,
    ProxmoxError,
    Timeout,
    TLSFailure,
    Unreachable,
)
from reconciler.apply.proxmox.vmnics import NicParseError, VmNic, nics_from_config

log = logging.getLogger(__name__)

DEFAULT_PORT = 8006
T = TypeVar("T")


@dataclass(frozen=True)
class NodeInfo:
    name: str
    online: bool


@dataclass(frozen=True)
class ClusterInfo:
    """What ``verify()`` learned; goes into the ProxmoxCluster CR status."""

    version: str
    release: str
    repoid: str
    cluster_name: str | None  # None: a standalone node
    quorate: bool
    node_count: int
    online_nodes: int
    nodes: tuple[NodeInfo, ...]
    endpoint: str | None = None  # the endpoint that answered
    skipped: tuple[str, ...] = ()  # endpoints tried first that could not be reached, and why


@dataclass(frozen=True)
class Privilege:
    """A PVE privilege on an ACL path, and what we need it for (for the message)."""

    path: str
    privilege: str
    purpose: str | None = None


@dataclass(frozen=True)
class VmLocation:
    vmid: int
    node: str
    name: str
    status: str


@dataclass(frozen=True)
class VmConfig:
    vmid: int
    node: str
    name: str | None
    nics: tuple[VmNic, ...]
    digest: str | None


@dataclass(frozen=True)
class Endpoint:
    host: str  # IPv6 in brackets
    port: int
    path_prefix: str | None = None  # behind a reverse proxy: https://host/<prefix>/api2/json

    @property
    def url(self) -> str:
        prefix = f"/{self.path_prefix}" if self.path_prefix else ""
        return f"https://{self.host}:{self.port}{prefix}"


def parse_endpoint(value: str) -> Endpoint:
    """``https://host[:port][/prefix]`` or ``host[:port]``; the port defaults to 8006."""
    text = value.strip()
    if "://" not in text:
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"endpoint {value!r} is not a URL") from None
    if parts.scheme != "https":
        raise ConfigurationError(f"endpoint {value!r}: the PVE API is served over https only")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError("endpoint URL must not contain credentials")
    if not parts.hostname:
        raise ConfigurationError(f"endpoint {value!r} has no host")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    prefix = parts.path.strip("/").removesuffix("api2/json").strip("/") or None
    return Endpoint(host=host, port=port or DEFAULT_PORT, path_prefix=prefix)


class ProxmoxClient:
    """One PVE API endpoint with one set of credentials. Connects lazily; ``close()`` when done."""

    def __init__(
        self,
        endpoint: str,
        *,
        token_id: str | None = None,
        token_secret: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_bundle: bytes | str | os.PathLike[str] | None = None,
        insecure_skip_verify: bool = False,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        fingerprint: str | None = None,
        fallbacks: Sequence[str] = (),
    ) -> None:
        self.endpoints = [parse_endpoint(e) for e in (endpoint, *fallbacks)]
        self._current = 0
        self.skipped: list[str] = []  # why endpoints were passed over (since the last take_skipped())
        self._secrets: list[str] = []
        if token_id:
            user, bang, name = token_id.partition("!")
            if not bang or "@" not in user or not name:
                raise ConfigurationError(f"tokenId {token_id!r} is not of the form user@realm!tokenname")
            if not token_secret:
                raise ConfigurationError(f"tokenId {token_id} is given without a tokenSecret")
            self.auth_kind = "token"
            self.principal = token_id
            self._auth_kwargs: dict[str, Any] = {
                "user": user,
                "token_name": name,
                "token_value": token_secret,
            }
            self._secrets.append(token_secret)
        elif username:
            if not password:
                raise ConfigurationError(f"username {username} is given without a password")
            if "@" not in username:
                raise ConfigurationError(f"username {username!r} needs a realm (user@pam, ...)")
            self.auth_kind = "ticket"
            self.principal = username
            self._auth_kwargs = {"user": username, "password": password}
            self._secrets.append(password)
        else:
            raise ConfigurationError("no credentials: give tokenId/tokenSecret or username/password")

        self._ca_tempfile: Path | None = None
        self.fingerprint = _fingerprint(fingerprint) if fingerprint else None
        if self.fingerprint is not None:
            if self.auth_kind != "token":
                raise ConfigurationError("tls.fingerprint needs API token credentials: proxmoxer's ticket login "
                                         "(username/password) cannot be pinned")
            if ca_bundle is not None or insecure_skip_verify:
                raise ConfigurationError(
                    "tls.fingerprint cannot be combined with caBundleSecretRef or insecureSkipVerify")
        self._verify: bool | str = False if self.fingerprint else self._tls_verify(ca_bundle, insecure_skip_verify)
        self.insecure_skip_verify = insecure_skip_verify
        if insecure_skip_verify:
            log.warning("TLS certificate verification is off for %s", self.endpoint.url)
        self._timeout = (connect_timeout, read_timeout)
        self._api: ProxmoxAPI | None = None
        self._connect_lock = threading.Lock()  # VM reads share one client (one ticket) across threads

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint in use: the first one, or the one that answered after failing over."""
        return self.endpoints[self._current]

    def take_skipped(self) -> tuple[str, ...]:
        """The endpoints passed over since the last call, and why (for status warnings)."""
        with self._connect_lock:
            out, self.skipped = tuple(self.skipped), []
        return out

    # --- public operations ---
    def verify(self, required: Iterable[Privilege] = ()) -> ClusterInfo:
        """Check credentials, read version, membership and quorum, then check that the
        credentials hold every ``required`` privilege (``PermissionDenied`` names the missing)."""
        version = self._get("/version", lambda api: api.version.get(), dict)
        status = self._get("/cluster/status", lambda api: api.cluster.status.get(), list)
        nodes = self._get("/nodes", lambda api: api.nodes.get(), list)
        try:
            info = _cluster_info(version, status, nodes)
        except (KeyError, TypeError, ValueError) as exc:
            raise APIError(
                f"{self._where()}: unexpected answer shape ({type(exc).__name__}: {exc})",
                endpoint=self.endpoint.url,
            ) from None
        self.check_privileges(required)
        return replace(info, endpoint=self.endpoint.url, skipped=self.take_skipped())

    def privileges(self, path: str) -> frozenset[str]:
        """The privileges the token (or user) has on ``path``: ``GET /access/permissions?path=``,
        which PVE answers from its ACLs, roles, groups and (for a token) privilege separation."""
        answer = self._get(f"/access/permissions?path={path}", lambda api: api.access.permissions.get(path=path), dict)
        granted = answer.get(path)
        return frozenset(str(k) for k in granted) if isinstance(granted, Mapping) else frozenset()

    def check_privileges(self, required: Iterable[Privilege]) -> None:
        """Raise ``PermissionDenied`` naming every privilege of ``required`` the credentials lack
        (one ``/access/permissions`` query per distinct path)."""
        wanted: dict[str, list[Privilege]] = {}
        for need in required:
            wanted.setdefault(need.path, []).append(need)
        missing: list[Privilege] = []
        for path in sorted(wanted):
            granted = self.privileges(path)
            missing += [n for n in wanted[path] if n.privilege not in granted]
        if missing:
            raise self.denied(missing) from None

    def denied(self, missing: Iterable[Privilege]) -> PermissionDenied:
        """The error for privileges the credentials lack, one clause per privilege."""
        who = f"{'API token' if self.auth_kind == 'token' else 'user'} {self.principal}"
        items = list(dict.fromkeys(missing))
        lacks = "; ".join(f"{n.privilege} on {n.path}" + (f" (to {n.purpose})" if n.purpose else "") for n in items)
        first = items[0]
        return PermissionDenied(
            f"{self._where()}: {who} lacks {lacks}",
            endpoint=self.endpoint.url,
            reason_phrase=f"Permission check failed ({first.path}, {first.privilege})",
            missing=tuple((n.path, n.privilege) for n in items),
        )

    def vm_locations(self) -> dict[int, VmLocation]:
        """Every QEMU VM of the cluster and where it runs: one ``/cluster/resources?type=vm``."""
        resources = self._get("/cluster/resources?type=vm", lambda api: api.cluster.resources.get(type="vm"), list)
        out: dict[int, VmLocation] = {}
        for entry in resources:
            if not isinstance(entry, Mapping) or entry.get("type") != "qemu":
                continue
            try:
                vmid = int(entry["vmid"])
            except (KeyError, TypeError, ValueError):
                continue
            out[vmid] = VmLocation(
                vmid=vmid,
                node=str(entry.get("node")),
                name=str(entry.get("name") or ""),
                status=str(entry.get("status") or "unknown"),
            )
        return out

    def find_vm(self, vmid: int) -> VmLocation | None:
        """Where QEMU VM ``vmid`` lives (via ``/cluster/resources?type=vm``); None if absent."""
        found = self.vm_locations().get(int(vmid))
        if found is None:
            self.check_visible(vmid)
        return found

    def check_visible(self, vmid: int) -> None:
        """For a VM not in ``/cluster/resources``: PVE leaves out the VMs the caller may not see, so
        "absent" is only true with VM.Audit on ``/vms/<vmid>``; else ``PermissionDenied``."""
        self.check_privileges([Privilege(f"/vms/{int(vmid)}", "VM.Audit", f"see VM {int(vmid)}")])

    def vm_config(self, node: str, vmid: int) -> VmConfig:
        """The VM's current config with its NICs parsed."""
        path = f"/nodes/{node}/qemu/{vmid}/config"
        config = self._get(path, lambda api: api.nodes(node).qemu(vmid).config.get(), dict)
        try:
            nics = nics_from_config(config)
        except NicParseError as exc:
            raise APIError(
                f"{self._where()}: VM {vmid} on {node} has a network device we cannot read: {self._scrub(str(exc))}",
                endpoint=self.endpoint.url,
            ) from None
        return VmConfig(
            vmid=int(vmid),
            node=node,
            name=config.get("name"),
            nics=nics,
            digest=config.get("digest"),
        )

    def vm_nics(self, vmid: int) -> VmConfig | None:
        """``find_vm`` then ``vm_config``; None if there is no such VM."""
        where = self.find_vm(vmid)
        return None if where is None else self.vm_config(where.node, vmid)

    def update_vm_nics(self, node: str, vmid: int, values: Mapping[str, str], *, digest: str | None,
                       delete: Sequence[str] = ()) -> None:
        """``PUT /nodes/{node}/qemu/{vmid}/config`` with the ``netN`` values (and the ``digest`` of
        the config they were planned from: PVE refuses the write if the VM changed meanwhile).
        With a ticket proxmoxer sends the CSRF token; needs VM.Config.Network on /vms/{vmid}."""
        path = f"/nodes/{node}/qemu/{vmid}/config"
        params = dict(values)
        if delete:
            params["delete"] = ",".join(delete)
        if digest:
            params["digest"] = digest
        first = self._current
        while True:
            log.info("PUT %s%s (%s; auth: %s)", self.endpoint.url, path, ", ".join(sorted(params)), self.auth_kind)
            try:
                self._connect().nodes(node).qemu(vmid).config.put(**params)
            except ProxmoxError as exc:
                error = exc
            except Exception as exc:
                error = self._classify(f"PUT {path}", exc)
            else:
                return
            if not self._fail_over(error, first):
                raise error from None

    def close(self) -> None:
        self._api = None
        if self._ca_tempfile is not None:
            self._ca_tempfile.unlink(missing_ok=True)
            self._ca_tempfile = None

    def __enter__(self) -> ProxmoxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ProxmoxClient(endpoint={self.endpoint.url!r}, auth={self.auth_kind}, principal={self.principal!r})"

    # --- plumbing ---
    def _tls_verify(self, ca_bundle: bytes | str | os.PathLike[str] | None, insecure: bool) -> bool | str:
        if insecure:
            return False
        if ca_bundle is None:
            return True
        if isinstance(ca_bundle, str) and ca_bundle.lstrip().startswith("-----BEGIN"):
            ca_bundle = ca_bundle.encode()
        if isinstance(ca_bundle, bytes):
            if b"-----BEGIN CERTIFICATE-----" not in ca_bundle:
                raise ConfigurationError("caBundle does not contain a PEM certificate")
            fd, name = tempfile.mkstemp(prefix="pve-ca-", suffix=".pem")
            with os.fdopen(fd, "wb") as handle:
                handle.write(ca_bundle)
            self._ca_tempfile = Path(name)
            return name
        path = Path(ca_bundle)
        if not path.is_file():
            raise ConfigurationError(f"caBundle file {path} does not exist")
        return str(path)

    def _connect(self) -> ProxmoxAPI:
        with self._connect_lock:
            return self._connect_once()

    def _connect_once(self) -> ProxmoxAPI:
        if self._api is None:
            ep = self.endpoint
            api = ProxmoxAPI(
                f"{ep.host}:{ep.port}",
                backend="https",
                path_prefix=ep.path_prefix,
                verify_ssl=self._verify,
                timeout=self._timeout,
                **self._auth_kwargs,
            )
            if self.fingerprint is not None:  # every request of this client goes through the pinned adapter
                session = api._store["session"]
                session.mount("https://", _PinnedAdapter(self.fingerprint))
            # Remember the ticket and CSRF token so that they are scrubbed too.
            self._secrets.extend(t for t in api.get_tokens() if t)
            self._api = api
        return self._api

    def _get(self, path: str, call: Callable[[ProxmoxAPI], Any], shape: type[T]) -> T:
        """``_get_once`` on the endpoint in use, then on the next ones while none can be reached."""
        first = self._current
        while True:
            try:
                return self._get_once(path, call, shape)
            except ProxmoxError as exc:
                if not self._fail_over(exc, first):
                    raise

    def _fail_over(self, error: ProxmoxError, first: int) -> bool:
        """Move to the next endpoint if ``error`` says this one reached nobody and endpoints are
        left that this call has not tried (True); the next call starts at the one that answered."""
        if len(self.endpoints) < 2 or not _reached_nobody(error):
            return False
        with self._connect_lock:
            nxt = (self._current + 1) % len(self.endpoints)
            if nxt == first:
                self._current = first
                return False
            self.skipped.append(error.message)
            log.warning("%s; trying %s", error.message, self.endpoints[nxt].url)
            self._current, self._api = nxt, None
        return True

    def _get_once(self, path: str, call: Callable[[ProxmoxAPI], Any], shape: type[T]) -> T:
        log.debug("GET %s%s (auth: %s)", self.endpoint.url, path, self.auth_kind)
        try:
            api = self._connect()
        except ProxmoxError:
            raise
        except Exception as exc:  # the ticket login (proxmoxer logs in when it is built)
            error = self._classify("POST /access/ticket", exc)
            raise error from None
        try:
            result = call(api)
        except ProxmoxError:
            raise
        except Exception as exc:  # classify, then drop the original (it may hold headers)
            error = self._classify(f"GET {path}", exc)
        else:
            if isinstance(result, shape):
                return result
            error = APIError(
                f"{self._where()}: GET {path} did not return a JSON {shape.__name__} "
                "(is this a Proxmox VE API endpoint?)",
                endpoint=self.endpoint.url,
                status=200,
            )
        raise error from None

    def _where(self) -> str:
        return f"Proxmox VE API at {self.endpoint.url}"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def _classify(self, what: str, exc: Exception) -> ProxmoxError:
        where, url = self._where(), self.endpoint.url
        who = f"{'API token' if self.auth_kind == 'token' else 'user'} {self.principal}"
        if isinstance(exc, ResourceException):
            status = int(exc.status_code)
            phrase = self._scrub(str(exc.content or "").strip())
            errors = (
                {str(k): self._scrub(str(v)) for k, v in exc.errors.items()}
                if isinstance(exc.errors, Mapping)
                else None
            )
            return _from_status(where, url, who, what, status, phrase, errors)
        if isinstance(exc, AuthenticationError):
            # proxmoxer's ticket login keeps only the status code, not the reason phrase.
            match = re.search(r"code: (\d{3})", str(exc))
            status = int(match.group(1)) if match else 401
            return _from_status(where, url, who, "POST /access/ticket", status, None, None)
        if isinstance(exc, requests.exceptions.SSLError):
            return TLSFailure(f"{where}: TLS handshake failed: {_tls_detail(str(exc))}", endpoint=url)
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return ConnectTimeout(f"{where}: no connection within {self._timeout[0]:g} s ({what})", endpoint=url)
        if isinstance(exc, requests.exceptions.ReadTimeout):
            # urllib3 says which timeout fired: a TLS handshake that hangs ends at the connect timeout.
            match = re.search(r"\(read timeout=([0-9.]+)\)", str(exc))
            waited = float(match.group(1)) if match else self._timeout[1]
            return Timeout(f"{where}: no answer to {what} within {waited:g} s", endpoint=url)
        if isinstance(exc, requests.exceptions.ConnectionError):
            return Unreachable(f"{where}: {_connection_detail(str(exc))} ({what})", endpoint=url)
        if isinstance(exc, requests.exceptions.RequestException):
            return APIError(f"{where}: request failed ({type(exc).__name__})", endpoint=url)
        return APIError(f"{where}: {what} failed ({type(exc).__name__})", endpoint=url)


def _from_status(
    where: str,
    url: str,
    who: str,
    what: str,
    status: int,
    phrase: str | None,
    errors: Mapping[str, str] | None,
) -> ProxmoxError:
    said = f"{status} {phrase}" if phrase else str(status)
    kwargs: dict[str, Any] = {
        "endpoint": url,
        "status": status,
        "reason_phrase": phrase,
        "errors": errors,
    }
    if status == 401:
        return AuthenticationFailed(f"{where} rejected {who} ({said}); check the credentials", **kwargs)
    if status == 403:
        return PermissionDenied(f"{where}: {who} may not {what} ({said})", **kwargs)
    if status in (595, 596, 597):
        # pveproxy could not reach the node it forwards this request to.
        return Unreachable(
            f"{where} could not reach the node serving {what} ({said}); "
            "the node is offline or the cluster network is broken",
            **kwargs,
        )
    detail = f"; {', '.join(f'{k}: {v}' for k, v in errors.items())}" if errors else ""
    return APIError(f"{where}: {what} failed ({said}{detail})", **kwargs)


class _PinnedAdapter(requests.adapters.HTTPAdapter):
    """Accepts a server only if its certificate's SHA-256 fingerprint is the pinned one (urllib3's
    ``assert_fingerprint``; CA and host name are not checked, as with PVE's own fingerprint trust)."""

    def __init__(self, fingerprint: str) -> None:
        self._pinned = fingerprint
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["assert_fingerprint"] = self._pinned
        super().init_poolmanager(*args, **kwargs)


def _fingerprint(value: str) -> str:
    text = value.strip().replace(":", "").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ConfigurationError("tls.fingerprint must be a SHA-256 fingerprint (32 bytes, AA:BB:...)")
    return text


def _tls_detail(text: str) -> str:
    if "Fingerprints did not match" in text:
        return "the certificate's SHA-256 fingerprint is not the pinned one (spec.tls.fingerprint)"
    mismatch = re.search(r"(?:[Hh]ostname|IP address) mismatch, certificate is not valid for '([^']+)'", text)
    if mismatch:
        return (f"the certificate is not valid for the host name {mismatch.group(1)!r} of the endpoint; "
                "use a host name the certificate names (or give that name in apiEndpoint)")
    match = re.search(r"certificate verify failed: ([^()'\"]+)", text)
    if match:
        return f"certificate not trusted ({match.group(1).strip()}); check caBundle"
    if "match" in text and "ostname" in text:
        return "the certificate does not match the endpoint host name"
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return "the endpoint does not speak TLS"
    return "TLS error"


_NOBODY = ("connection refused", "host name does not resolve", "no route to host", "network is unreachable",
           "cannot connect")


def _reached_nobody(error: ProxmoxError) -> bool:
    """No server got the request: worth trying another endpoint (a write too)."""
    if isinstance(error, ConnectTimeout):
        return True
    return isinstance(error, Unreachable) and error.status is None and any(d in error.message for d in _NOBODY)


def _connection_detail(text: str) -> str:
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "NameResolution" in text:
        return "host name does not resolve"
    if "RemoteDisconnected" in text or "without response" in text or "aborted" in text:
        return "the server closed the connection without answering"
    if "No route to host" in text:
        return "no route to host"
    if "Network is unreachable" in text:
        return "network is unreachable"
    return "cannot connect"


def _cluster_info(version: Mapping[str, Any], status: list[Any], nodes: list[Any]) -> ClusterInfo:
    cluster = next((e for e in status if e.get("type") == "cluster"), None)
    status_nodes = {str(e["name"]): bool(e.get("online")) for e in status if e.get("type") == "node"}
    online = dict(status_nodes)
    for entry in nodes:
        name = str(entry["node"])
        online.setdefault(name, entry.get("status") == "online")
    infos = tuple(NodeInfo(name=n, online=online[n]) for n in sorted(online))
    return ClusterInfo(
        version=str(version["version"]),
        release=str(version["release"]),
        repoid=str(version["repoid"]),
        cluster_name=str(cluster["name"]) if cluster else None,
        # a standalone node has no quorum to lose
        quorate=bool(cluster.get("quorate")) if cluster else True,
        node_count=int(cluster["nodes"]) if cluster else len(infos),
        online_nodes=sum(1 for n in infos if n.online),
        nodes=infos,
    )
