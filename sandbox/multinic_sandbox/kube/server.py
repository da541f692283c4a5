"""The HTTP(S) front end and ``KubeSandbox``, the object tests and the CLI start.

    with KubeSandbox() as sandbox:                      # 127.0.0.1, any free port, plain HTTP
        api = kubernetes.client.CoreV1Api(sandbox.api_client())
        ...
        assert sandbox.request_log.writes() == []
"""

from __future__ import annotations

import builtins
import contextlib
import os
import select
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from multinic_sandbox.kube.clock import Clock
from multinic_sandbox.kube.cluster import Cluster, WriteOptions
from multinic_sandbox.kube.errors import ApiError
from multinic_sandbox.kube.faults import Faults
from multinic_sandbox.kube.jobs import JobController
from multinic_sandbox.kube.kubeconfig import Tls, write_kubeconfig
from multinic_sandbox.kube.node_model import NodeModel
from multinic_sandbox.kube.request_log import RequestLog, RequestRecord
from multinic_sandbox.kube.routes import (
    Request,
    Response,
    Router,
    default_manager,
    error_response,
    request_info,
)

T = TypeVar("T")

# The verbs that commit to storage (etcd) on a real API server.
_MUTATING = frozenset(("create", "update", "patch", "delete", "deletecollection"))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is the record; keep test output clean

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: builtins.list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _peer_closed(self) -> bool:
        sock = self.connection
        if not isinstance(sock, socket.socket) or hasattr(sock, "pending"):
            return False  # TLS: rely on write errors and timeouts
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _serve(self) -> None:
        sandbox = self.server.sandbox
        started = time.monotonic()
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        body = self._read_body()
        info = request_info(self.command, url.path, query)
        user_agent = self.headers.get("User-Agent", "") or ""
        manager = query.get("fieldManager", "")
        if info.verb in ("create", "update", "patch") and not manager and \
                "apply-patch" not in (self.headers.get("Content-Type") or ""):
            manager = default_manager(user_agent)

        def log(status: int) -> None:
            sandbox.request_log.record(RequestRecord(
                self.command, url.path, info.verb, info.group, info.version, info.resource,
                info.subresource, info.namespace, info.name, status, user_agent, manager,
                self.headers.get("Content-Type", "") or "", query.get("dryRun") == "All",
                time.monotonic() - started))

        response = self._authorize(sandbox)
        if response is None:
            fault = sandbox.faults.take(info.verb, info.group, info.resource, info.subresource,
                                        info.namespace, info.name, url.path)
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.drop:
                    log(0)
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault.status:
                    headers = {}
                    if fault.status == 429 or fault.retry_after is not None:
                        headers["Retry-After"] = str(fault.retry_after or 1)
                    message = fault.message or f"injected fault ({fault.status})"
                    response = error_response(ApiError(fault.status, message, headers=headers))
        if response is None and info.verb in _MUTATING and query.get("dryRun") != "All" \
                and sandbox.write_latency > 0:
            # The modelled storage commit (see ``KubeSandbox.write_latency``): slept in this
            # request's own thread before the write takes the store lock, so concurrent writes
            # wait for their commits side by side, as on a real API server.
            time.sleep(sandbox.write_latency)
        if response is None:
            request = Request(self.command, url.path, query, self.headers, body)
            try:
                response = sandbox.router.handle(request, info, self._peer_closed)
            except Exception as exc:  # a sandbox bug: answer like an apiserver would, loudly
                traceback.print_exc(file=sys.stderr)
                response = error_response(ApiError(500, f"sandbox internal error: {exc!r}"))
        log(response.status)
        self._send(response)

    def _authorize(self, sandbox: KubeSandbox) -> Response | None:
        if sandbox.token is None:
            return None
        if self.headers.get("Authorization", "") == f"Bearer {sandbox.token}":
            return None
        return error_response(ApiError(401, "Unauthorized"))

    def _send(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Cache-Control", "no-cache, private")
            for key, value in response.headers:
                self.send_header(key, value)
            if response.stream is None:
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            self._stream(response.stream)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            self.close_connection = True

    def _stream(self, chunks: Iterable[bytes | None]) -> None:
        try:
            for chunk in chunks:
                if chunk is None:
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: KubeSandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up a keep-alive connection is normal, not a server error.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def get_request(self) -> tuple[socket.socket, Any]:
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle plus the client's
        # delayed ACK would stall every response ~40 ms (Go's apiserver sets it by default).
        conn, address = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, address


class KubeSandbox:
    """A wire-level Kubernetes API server on localhost (context manager; ``start()/stop()``).

    ``jobs="auto"`` runs the Job controller in a thread (after each Job/Pod write and every
    ``tick`` seconds); ``jobs="manual"`` leaves it to ``sandbox.jobs.step()``.

    ``write_latency`` (seconds, default 0: off) is an explicit model of a real API server's
    storage commit: every mutating HTTP request (create, update, patch, delete; not dry-run, not
    reads or watches, not the in-process helpers below) waits that long before it is applied, the
    way an apiserver's write waits for etcd's raft commit and fsync. The wait holds no lock, so
    concurrent writes overlap as they do against etcd; the store's order, resourceVersions,
    conflicts and watch events are unchanged (the event follows the commit, as it does from
    etcd). It can be changed while the sandbox runs.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False,
                 token: str | None = None, kubeconfig_path: str | os.PathLike[str] | None = None,
                 node_model: NodeModel | None = None, jobs: str = "auto", tick: float = 0.05,
                 seed: int | None = None, namespaces: Iterable[str] = (),
                 write_latency: float = 0.0) -> None:
        if write_latency < 0:
            raise ValueError("write_latency must be >= 0")
        self.write_latency = write_latency
        if jobs not in ("auto", "manual"):
            raise ValueError("jobs must be 'auto' or 'manual'")
        self.host, self.port, self.token = host, port, token
        self.clock = Clock()
        self._tls = Tls.create() if tls else None
        self.cluster = Cluster(self.clock, seed, self._tls.ca_pem if self._tls else None)
        self.router = Router(self.cluster, lambda: f"{self.host}:{self.port}")
        self.faults = Faults()
        self.request_log = RequestLog()
        self.node_model = node_model or NodeModel()
        self.jobs = JobController(self.cluster, self.node_model, tick)
        self._jobs_mode = jobs
        self._workdir = tempfile.TemporaryDirectory(prefix="kube-sandbox-")
        self.kubeconfig_path = Path(kubeconfig_path) if kubeconfig_path else \
            Path(self._workdir.name) / "kubeconfig"
        self.ca_path: Path | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        for namespace in namespaces:
            self.cluster.ensure_namespace(namespace)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        scheme = "https" if self._tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> KubeSandbox:
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), self)
        if self._tls is not None:
            server.socket = self._tls.context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False)
            self.ca_path = Path(self._workdir.name) / "ca.crt"
            self.ca_path.write_bytes(self._tls.ca_pem)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="kube-sandbox-http", daemon=True)
        self._thread.start()
        write_kubeconfig(self.kubeconfig_path, self.url,
                         self._tls.ca_pem if self._tls else None, self.token)
        if self._jobs_mode == "auto":
            self.jobs.start()
        return self

    def stop(self) -> None:
        self.jobs.stop()
        self.cluster.store.close()  # ends open watches
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._workdir.cleanup()

    def __enter__(self) -> KubeSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients ---------------------------------------------------------------------------
    def client_configuration(self) -> Any:
        from kubernetes import client

        config = client.Configuration()
        config.host = self.url
        if self.ca_path is not None:
            config.ssl_ca_cert = str(self.ca_path)
        if self.token:
            config.api_key = {"authorization": f"Bearer {self.token}"}
        return config

    def api_client(self) -> Any:
        """An official ``kubernetes.client.ApiClient`` pointed at this sandbox."""
        from kubernetes import client

        return client.ApiClient(self.client_configuration())

    def dynamic_client(self) -> Any:
        from kubernetes import dynamic

        return dynamic.DynamicClient(self.api_client())

    # -- direct object access (no HTTP, not in the request log) -----------------------------
    def get(self, api_version: str, kind: str, name: str,
            namespace: str = "") -> dict[str, Any] | None:
        """A private copy of an object, or None."""
        rt = self.cluster.type_for(api_version, kind)
        stored = self.cluster.find(rt, namespace, name)
        return stored.copy() if stored else None

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str = "") -> list[dict[str, Any]]:
        from multinic_sandbox.kube.selectors import label_selector as compile_selector

        rt = self.cluster.type_for(api_version, kind)
        page = self.cluster.list(rt, namespace, compile_selector(label_selector))
        return [s.copy() for s in page.items]

    def seed(self, *objects: dict[str, Any] | Iterable[dict[str, Any]],
             manager: str = "sandbox-seed") -> builtins.list[dict[str, Any]]:
        """Create objects (CRDs first if mixed in), creating namespaces on the way."""
        flat: list[dict[str, Any]] = []
        for item in objects:
            flat.extend([item] if isinstance(item, dict) else item)
        flat.sort(key=lambda o: o.get("kind") != "CustomResourceDefinition")
        created = []
        for obj in flat:
            rt = self.cluster.type_for(obj["apiVersion"], obj["kind"])
            namespace = (obj.get("metadata") or {}).get("namespace", "default") \
                if rt.namespaced else ""
            if rt.namespaced:
                self.cluster.ensure_namespace(namespace)
            result = self.cluster.create(rt, namespace, _copy(obj), WriteOptions(manager=manager))
            created.append(result.obj)
        return created

    def apply(self, obj: dict[str, Any], manager: str = "sandbox", force: bool = True,
              subresource: str = "") -> dict[str, Any]:
        """Server-side apply ``obj`` in-process (creates or updates)."""
        rt = self.cluster.type_for(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace", "default") if rt.namespaced else ""
        result = self.cluster.apply(rt, namespace, meta["name"], _copy(obj),
                                    WriteOptions(manager=manager, force=force), subresource)
        return result.obj

    def set_status(self, api_version: str, kind: str, name: str, status: dict[str, Any],
                   namespace: str = "", manager: str = "sandbox") -> dict[str, Any]:
        rt = self.cluster.type_for(api_version, kind)
        body = self.cluster.get(rt, namespace, name).copy()
        body["status"] = status
        subresource = "status" if rt.status_subresource else ""
        return self.cluster.update(rt, namespace, name, body, WriteOptions(manager=manager),
                                   subresource).obj

    def delete(self, api_version: str, kind: str, name: str, namespace: str = "",
               propagation: str = "Background") -> None:
        rt = self.cluster.type_for(api_version, kind)
        self.cluster.delete(rt, namespace, name, {"propagationPolicy": propagation})

    def compact(self) -> None:
        """Forget the watch history: watches from older resourceVersions then get 410 Gone."""
        self.cluster.store.compact()

    def break_watches(self, abrupt: bool = True) -> None:
        """End every open watch: ``abrupt`` drops the connection mid-stream (a broken watch), else
        the stream ends like a watch whose timeout passed."""
        router = self.router
        router.abrupt_break = abrupt
        router.watch_generation += 1
        with self.cluster.store.lock:
            self.cluster.store.changed.notify_all()

    @property
    def resource_version(self) -> int:
        return self.cluster.store.resource_version

    def wait_until(self, predicate: Callable[[], T], timeout: float = 5.0,
                   interval: float = 0.02, message: str = "") -> T:
        """Poll ``predicate`` until it returns something truthy; TimeoutError otherwise.

        With ``jobs="manual"`` each poll also runs one controller step.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self.jobs.running:
                self.jobs.step()
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(message or f"condition not met within {timeout}s")
            time.sleep(interval)


def _copy(obj: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(obj))
