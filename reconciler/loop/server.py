"""The loop's HTTP endpoints.

    GET  /healthz                liveness: the process and its loop thread are alive
    GET  /readyz                 ready after the first successful cycle (a standby replica: once it
                                 has reached the Lease)
    GET  /metrics                Prometheus text format
    POST /hooks/git              reconcile now (signature required; 401 and nothing triggered otherwise)
    GET  /api/v1/clusters[/NAME] read-only registration API (and /api/v1/nodes)
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reconciler.loop import webhook
from reconciler.loop.metrics import Metrics

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024


class State:
    """What the endpoints report; written by the loop thread."""

    def __init__(self) -> None:
        self.ready = False
        self.alive: Callable[[], bool] = lambda: True
        self.trigger = threading.Event()
        self.api: Callable[[str, str], tuple[int, dict[str, Any]]] | None = None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def _reply(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, body: dict[str, Any]) -> None:
        self._reply(code, json.dumps(body).encode() + b"\n")

    def do_GET(self) -> None:
        state, path = self.server.state, self.path.split("?", 1)[0]
        if path == "/healthz":
            ok = state.alive()
            self._reply(200 if ok else 503, b"ok\n" if ok else b"loop stopped\n", "text/plain")
        elif path == "/readyz":
            self._reply(200 if state.ready else 503, b"ready\n" if state.ready else b"not ready\n", "text/plain")
        elif path == "/metrics":
            self._reply(200, self.server.metrics.exposition(), "text/plain; version=0.0.4; charset=utf-8")
        elif path.startswith("/api/v1/") and state.api is not None:
            code, body = state.api("GET", path)
            self._json(code, body)
        else:
            self._json(404, {"error": f"no such endpoint: {path}", "code": 404})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != "/hooks/git":
            self._json(404, {"error": f"no such endpoint: {path}", "code": 404})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._json(413, {"error": "payload too large", "code": 413})
            return
        body = self.rfile.read(length)
        provider = webhook.verify(self.server.secret, dict(self.headers.items()), body)
        if provider is None:
            self.server.metrics.webhooks.labels("rejected").inc()
            self._json(401, {"error": "signature missing or invalid", "code": 401})
            return
        self.server.metrics.webhooks.labels("accepted").inc()
        log.info("webhook from %s: reconcile requested", provider)
        self.server.state.trigger.set()
        self._json(202, {"status": "reconcile requested", "provider": provider})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: State, metrics: Metrics, secret: str) -> None:
        super().__init__(address, _Handler)
        self.state, self.metrics, self.secret = state, metrics, secret

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up (probes, scrapers) is normal; anything else is logged, not printed.
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            log.error("http: error serving %s", client_address, exc_info=True)


class HTTPServer:
    def __init__(self, state: State, metrics: Metrics, *, host: str = "0.0.0.0", port: int = 8080,
                 webhook_secret: str = "") -> None:
        self._server = _Server((host, port), state, metrics, webhook_secret)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
