"""``ProxmoxSandbox``: the PVE API over HTTPS on a local port, in a background thread.

Wire behaviour follows pve-http-server: status line ``HTTP/1.1 <code> <message>`` where the
message is the error text, headers ``Server: pve-api-daemon/3.0``, ``Cache-Control: max-age=0``,
``Pragma: no-cache``, ``Expires``; JSON bodies ``{"data": ...}``; a delay before every 401.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Mapping
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from multinic_sandbox.proxmox import api, auth
from multinic_sandbox.proxmox.faults import Faults
from multinic_sandbox.proxmox.requestlog import RequestLog, RequestRecord
from multinic_sandbox.proxmox.tls import ServerTls, make_server_tls
from multinic_sandbox.proxmox.topology import Topology, default_topology

log = logging.getLogger("multinic_sandbox.proxmox")

API_PREFIX = "/api2/json"
MAX_BODY = 64 * 1024  # pveproxy's limit for POST bodies


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    sandbox: ProxmoxSandbox

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that give up (timeouts, wrong CA) are normal here; no tracebacks on stderr.
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30  # idle keep-alive connections

    # --- connection setup: TLS handshake in the connection's own thread ---
    def setup(self) -> None:
        sandbox = self.server.sandbox
        raw: socket.socket = self.request
        raw.settimeout(10)
        # Headers and body go out as separate writes; without this, Nagle + delayed ACK add 40 ms.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert sandbox.tls is not None
        self.request = sandbox.tls.context.wrap_socket(raw, server_side=True)
        sandbox._track(self.request)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sandbox._untrack(self.request)
            with contextlib.suppress(OSError):
                self.request.close()

    def version_string(self) -> str:
        return "pve-api-daemon/3.0"

    def log_message(self, format: str, *args: Any) -> None:
        # The stdlib would log the request line (with query string); we log our own record.
        return

    # --- request handling ---
    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_GET

    def _handle(self) -> None:
        sandbox = self.server.sandbox
        method = self.command
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        body = self._read_body()
        if split.path != API_PREFIX and not split.path.startswith(API_PREFIX + "/"):
            self._record(method, split.path, split.query, 501, None)
            self._finish_error(501, f"Method '{method} {split.path}' not implemented", False)
            return
        rel = split.path[len(API_PREFIX) :] or "/"

        fault = sandbox.faults.take(method, rel)
        if fault is not None:
            if fault.delay and sandbox._stopping.wait(fault.delay):
                return
            if fault.kind == "drop":
                self._record(method, rel, split.query, 0, None, fault.kind)
                self._drop()
                return
            if fault.kind == "error":
                self._record(method, rel, split.query, fault.status, None, fault.kind)
                self._finish_error(fault.status, fault.reason, False)
                return

        fault_kind = fault.kind if fault else None
        if rel.rstrip("/") == "/access/ticket" and method == "POST":
            self._ticket(body, rel, split.query, fault_kind)
            return

        try:
            principal = auth.authenticate(
                sandbox.topology,
                sandbox.tickets,
                method=method,
                cookie_header=self.headers.get("Cookie"),
                authorization=self.headers.get("Authorization"),
                csrf_header=self.headers.get("CSRFPreventionToken"),
            )
        except auth.AuthError as exc:
            sandbox._stopping.wait(sandbox.auth_failure_delay)
            self._record(method, rel, split.query, 401, None, fault_kind)
            self._finish_error(401, str(exc), False)
            return

        request = api.ApiRequest(method=method, path=rel, query={**query, **body}, principal=principal)
        # Record before answering, so that a client that got its answer finds it in the log.
        try:
            data = api.dispatch(sandbox.topology, request)
        except auth.PermissionError403 as exc:
            self._record(method, rel, split.query, 403, principal, fault_kind)
            self._finish_error(403, str(exc), True)
        except api.ApiError as exc:
            self._record(method, rel, split.query, exc.status, principal, fault_kind)
            self._finish_error(exc.status, exc.message, exc.json_body, exc.errors)
        else:
            self._record(method, rel, split.query, 200, principal, fault_kind)
            self._send(200, "OK", {"data": data})

    def _ticket(self, form: dict[str, str], rel: str, query: str, fault: str | None) -> None:
        sandbox = self.server.sandbox
        username = form.get("username", "")
        try:
            user = auth.login(sandbox.topology, sandbox.tickets, username, form.get("password", ""))
        except auth.AuthError as exc:
            sandbox._stopping.wait(sandbox.auth_failure_delay)
            self._record("POST", rel, query, 401, None, fault)
            self._finish_error(401, str(exc), True)
            return
        ticket, csrf = sandbox.tickets.issue(user.userid)
        data: dict[str, Any] = {
            "username": user.userid,
            "ticket": ticket,
            "CSRFPreventionToken": csrf,
            "cap": auth.capabilities(user),
        }
        if sandbox.topology.cluster is not None and "Sys.Audit" in auth.acl_lookup(user.privileges, "/"):
            data["clustername"] = sandbox.topology.cluster
        # The login itself carries no ticket or token: logged as auth "none".
        self._record("POST", rel, query, 200, auth.Principal("none", user.userid, user), fault)
        self._send(200, "OK", {"data": data})

    # --- plumbing ---
    def _read_body(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return {}
        raw = self.rfile.read(min(length, MAX_BODY))
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            try:
                parsed = json.loads(raw)
            except ValueError:
                return {}
            return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))

    def _finish_error(self, status: int, message: str, json_body: bool, errors: dict[str, str] | None = None) -> None:
        body: dict[str, Any] | None = None
        if json_body:
            body = {"data": None}
            if errors:
                body["errors"] = errors
            if self.server.sandbox.topology.version.error_bodies_have_message:
                body["message"] = message + "\n"
        self._send(status, message, body)

    def _send(self, status: int, reason: str, body: Mapping[str, Any] | None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        now = formatdate(usegmt=True)
        self.send_response(status, reason.replace("\r", " ").replace("\n", " ").strip())
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        self.send_header("Expires", now)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        if status == 401:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        """Close without an answer; close_notify first so clients see a closed connection."""
        self.close_connection = True
        conn: ssl.SSLSocket = self.request
        with contextlib.suppress(OSError, ValueError):
            conn.unwrap()

    def _record(
        self,
        method: str,
        path: str,
        query: str,
        status: int,
        principal: auth.Principal | None,
        fault: str | None = None,
    ) -> None:
        kind = principal.kind if principal else self._claimed_auth()
        record = RequestRecord(
            method=method,
            path=path,
            query=query,
            status=status,
            auth=kind,
            principal=principal.name if principal else None,
            fault=fault,
        )
        self.server.sandbox.request_log.append(record)
        log.info(
            "%s %s %s -> %s (auth: %s%s)",
            self.server.sandbox.name,
            method,
            path,
            status or "dropped",
            kind,
            f", fault: {fault}" if fault else "",
        )

    def _claimed_auth(self) -> str:
        """What the client tried, for failed requests (the kind only, never the value)."""
        if auth.ticket_from_request(self.headers.get("Cookie"), self.headers.get("Authorization")):
            return "ticket"
        if (self.headers.get("Authorization") or "").startswith("PVEAPIToken="):
            return "token"
        return "none"


class ProxmoxSandbox:
    """A PVE API endpoint. Use as a context manager or ``start()``/``stop()``.

    ``auth_failure_delay`` is PVE's 3 s pause before every 401; tests set it near zero.
    """

    def __init__(
        self,
        topology: Topology | Mapping[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auth_failure_delay: float = 3.0,
        hostnames: tuple[str, ...] = ("127.0.0.1", "localhost"),
        name: str | None = None,
    ) -> None:
        if topology is None:
            topology = default_topology()
        elif isinstance(topology, Mapping):
            topology = Topology.from_dict(topology)
        topology.validate()
        self.topology: Topology = topology
        self.host = host
        self.port = port
        self.auth_failure_delay = auth_failure_delay
        self.hostnames = hostnames
        self.name = name or (topology.cluster or topology.nodes[0].name)
        self.faults = Faults()
        self.request_log = RequestLog()
        self.tickets = auth.TicketAuthority()
        self.tls: ServerTls | None = None
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: Path | None = None
        self._connections: set[ssl.SSLSocket] = set()
        self._lock = threading.Lock()

    # --- lifecycle ---
    def start(self) -> ProxmoxSandbox:
        if self._server is not None:
            return self
        self._tmpdir = Path(tempfile.mkdtemp(prefix="pve-sandbox-"))
        self.tls = make_server_tls(self._tmpdir, self.hostnames)
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.sandbox = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            daemon=True,
            name=f"pve-sandbox-{self.port}",
        )
        self._thread.start()
        log.info("PVE sandbox %s listening on %s", self.name, self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        log.info("PVE sandbox %s stopped", self.name)

    def __enter__(self) -> ProxmoxSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: ssl.SSLSocket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn: ssl.SSLSocket) -> None:
        with self._lock:
            self._connections.discard(conn)

    # --- what clients need ---
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def ca_file(self) -> str:
        if self.tls is None:
            raise RuntimeError("the sandbox is not started")
        return str(self.tls.ca_file)

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the server certificate (``AA:BB:...``), for ``tls.fingerprint``."""
        if self.tls is None:
            raise RuntimeError("the sandbox is not started")
        return self.tls.fingerprint

    @property
    def ca_pem(self) -> bytes:
        if self.tls is None:
            raise RuntimeError("the sandbox is not started")
        return self.tls.ca_pem

    @property
    def username(self) -> str:
        return self.topology.default_user.userid

    @property
    def password(self) -> str:
        return self.topology.default_user.password

    @property
    def token_id(self) -> str | None:
        user = self.topology.default_user
        return f"{user.userid}!{user.tokens[0].name}" if user.tokens else None

    @property
    def token_secret(self) -> str | None:
        user = self.topology.default_user
        return user.tokens[0].secret if user.tokens else None

    def info(self) -> dict[str, Any]:
        """The ``--info-out`` document (contains secrets: write it to a private file only)."""
        return {
            "url": self.url,
            "caFile": self.ca_file,
            "tokenId": self.token_id,
            "tokenSecret": self.token_secret,
            "username": self.username,
            "password": self.password,
        }

    def secret_values(self) -> list[str]:
        """Every secret this sandbox knows or issued: passwords, token secrets, tickets, CSRF."""
        values = [u.password for u in self.topology.users]
        values += [t.secret for u in self.topology.users for t in u.tokens]
        values += self.tickets.issued_secrets()
        return [v for v in values if v]
