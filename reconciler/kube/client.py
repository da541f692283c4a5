"""The adapter to the official ``kubernetes`` client: the only module that imports it.

Reads are one label-selected, paginated LIST per kind (or, in the loop, a watch-fed cache:
``reconciler.kube.cache``); writes are server-side apply under the field manager
``multinic-reconciler`` with ``fieldValidation=Strict``; every call retries transient failures
with capped, jittered backoff. LIST and watch payloads are decoded as plain dicts (the client's
model objects are never built for them).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from reconciler.kube import crds, jobs, objects, retry

if TYPE_CHECKING:
    from reconciler.kube.cache import KubeCache

log = logging.getLogger(__name__)
T = TypeVar("T")
PAGE_SIZE = 500
TIMEOUT = (5.0, 30.0)  # connect, read
POOL_SIZE = 32  # connections per host: concurrent writers plus the long-lived watches
# The collections a cache can hold: kind -> label selector (None: every object of the kind).
COLLECTIONS: dict[str, str | None] = {"ProxmoxCluster": objects.OWNED_SELECTOR,
                                      "MultiNicNodeConfig": objects.OWNED_SELECTOR,
                                      "Job": jobs.JOB_SELECTOR, "Node": None}


class NotLeader(Exception):
    """A write was refused because this replica no longer holds the leader Lease."""


class KubeError(Exception):
    """A Kubernetes API call failed for good; ``status`` is the HTTP code (0: no response)."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def api_client(kubeconfig: str | None = None, context: str | None = None) -> k8s.ApiClient:
    """``--kubeconfig``, else ``$KUBECONFIG`` / ``~/.kube/config``, else in-cluster config."""
    from kubernetes.config.config_exception import ConfigException

    configuration = k8s.Configuration()
    default = os.path.expanduser("~/.kube/config")
    try:
        if kubeconfig or os.environ.get("KUBECONFIG") or os.path.exists(default):
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=configuration)
        else:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError) as exc:
        raise KubeError(f"cannot load Kubernetes configuration: {exc}") from None
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, POOL_SIZE)
    return k8s.ApiClient(configuration)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, ApiException):
        if exc.status == 409 and '"AlreadyExists"' in str(exc.body or ""):
            return False  # not a race to retry: the object is there
        return exc.status in retry.TRANSIENT_STATUS
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _body(response: Any) -> dict[str, Any]:
    data = response.data if hasattr(response, "data") else response.read()
    return json.loads(data)  # type: ignore[no-any-return]


def _error(exc: Exception, what: str) -> KubeError:
    if isinstance(exc, ApiException):
        message, reason = exc.reason or "", ""
        try:
            body = json.loads(exc.body or "{}")
            message, reason = body.get("message", message), body.get("reason", "")
        except (ValueError, TypeError):
            pass
        return KubeError(f"{what}: {exc.status} {message}", exc.status or 0, reason)
    return KubeError(f"{what}: {type(exc).__name__}: {exc}")


@dataclass
class Kube:
    """Typed operations on our custom resources in one namespace."""

    api: k8s.ApiClient
    namespace: str
    backoff: retry.Backoff = field(default_factory=retry.Backoff)
    on_retry: Callable[[BaseException, int], None] | None = None
    # Called before every write; raises NotLeader when this replica may not act (leader election).
    write_guard: Callable[[], None] | None = None
    # Watch-fed reads (the loop); None: every read is a LIST. Writes are recorded into it.
    cache: KubeCache | None = None

    # The adapter sends and reads plain dicts (the client passes them through as they are); the
    # client's signatures name model classes, so its API objects are typed Any here.
    def __post_init__(self) -> None:
        self.custom: Any = k8s.CustomObjectsApi(self.api)

    # The typed APIs load large model modules: built on first use, so short CLI calls stay fast.
    @functools.cached_property
    def core(self) -> Any:
        return k8s.CoreV1Api(self.api)

    @functools.cached_property
    def batch(self) -> Any:
        return k8s.BatchV1Api(self.api)

    @functools.cached_property
    def coordination(self) -> Any:
        return k8s.CoordinationV1Api(self.api)

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        if self.write_guard is not None and not what.startswith(("list", "get", "read")):
            self.write_guard()
        try:
            return retry.call(operation, backoff=self.backoff, is_transient=_transient,
                              retry_after=_retry_after, on_retry=self._log_retry)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _error(exc, what) from None

    def _log_retry(self, exc: BaseException, attempt: int) -> None:
        status = getattr(exc, "status", type(exc).__name__)
        log.warning("transient Kubernetes API error (%s), retrying (attempt %d)", status, attempt + 1)
        if self.on_retry is not None:
            self.on_retry(exc, attempt)

    def _cached(self, kind: str) -> list[dict[str, Any]] | None:
        return self.cache.items(kind) if self.cache is not None else None

    def list_owned(self, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind`` we manage: from the cache when one is fresh, else one LIST per
        500 objects. The dicts are shared with the cache: read them, never change them."""
        cached = self._cached(kind)
        items = cached if cached is not None else self.list_collection(kind)[0]
        return [item for item in items if objects.is_owned(item)]

    # -- collections (LIST + watch) for the caches ---------------------------------------------

    def _lister(self, kind: str) -> tuple[str, Callable[..., Any], dict[str, Any]]:
        selector = COLLECTIONS[kind]
        selected = {"label_selector": selector} if selector else {}
        if kind == "Job":
            return "jobs", self.batch.list_namespaced_job, {"namespace": self.namespace, **selected}
        if kind == "Node":
            return "nodes", self.core.list_node, selected
        plural = crds.plural(kind)
        lister = functools.partial(self.custom.list_namespaced_custom_object, crds.GROUP, crds.VERSION,
                                   self.namespace, plural)
        return plural, lister, selected

    def list_collection(self, kind: str) -> tuple[list[dict[str, Any]], str]:
        """Every object of a cacheable collection (``COLLECTIONS``) and the list's resourceVersion."""
        plural, lister, kwargs = self._lister(kind)
        items, version = self._raw_list(f"list {plural}", lister, **kwargs)
        for item in items:
            item.setdefault("kind", kind)  # LIST items carry no kind
        return items, version

    def watch_collection(self, kind: str, resource_version: str, timeout_seconds: int,
                         opened: Callable[[Any], None] | None = None) -> Iterator[dict[str, Any]]:
        """Watch events (``{"type", "object"}`` dicts, bookmarks included) after ``resource_version``
        until the server ends the watch. ``opened`` receives the response (to close it from
        another thread). Raises KubeError: status 410 when the version is too old (re-list),
        0 when the connection broke."""
        plural, lister, kwargs = self._lister(kind)

        def start() -> Any:
            return lister(watch=True, resource_version=resource_version, allow_watch_bookmarks=True,
                          timeout_seconds=timeout_seconds, _preload_content=False,
                          _request_timeout=(TIMEOUT[0], timeout_seconds + 60), **kwargs)
        response = self._call(f"watch {plural}", start)
        if opened is not None:
            opened(response)
        buffer = b""
        try:
            for chunk in response.stream(64 * 1024, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise KubeError(f"watch {plural}: {status.get('code')} {status.get('message', '')}",
                                        int(status.get("code") or 0), str(status.get("reason") or ""))
                    yield event
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise KubeError(f"watch {plural}: {type(exc).__name__}: {exc}") from None
        finally:
            response.release_conn()

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        def read() -> Any:
            return self.custom.get_namespaced_custom_object(
                crds.GROUP, crds.VERSION, self.namespace, crds.plural(kind), name, _request_timeout=TIMEOUT)
        try:
            return self._call(f"get {kind}/{name}", read)  # type: ignore[no-any-return]
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply; we own our fields (force), unknown fields are refused (Strict)."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]

        def patch() -> Any:
            return self.custom.patch_namespaced_custom_object(
                crds.GROUP, crds.VERSION, self.namespace, crds.plural(kind), name, manifest,
                field_manager=objects.FIELD_MANAGER, force=True, field_validation="Strict",
                _content_type="application/apply-patch+yaml", _request_timeout=TIMEOUT,
                _preload_content=False)
        # Read the body ourselves: the generated client maps only 200 for PATCH, so the 201 of
        # an apply that creates would come back as None.
        return self._record(kind, _body(self._call(f"apply {kind}/{name}", patch)))

    def _record(self, kind: str, obj: T) -> T:
        """What a write returned, recorded in the cache; the cache's (slimmed, shared) copy is
        returned then: read it, never change it."""
        if self.cache is not None and isinstance(obj, dict):
            recorded: T = self.cache.record(kind, obj)
            return recorded
        return obj

    def replace_spec(self, kind: str, name: str, spec: dict[str, Any], resource_version: str) -> dict[str, Any]:
        """Set the spec exactly (drops fields another manager added), if nobody wrote meanwhile."""
        ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
               {"op": "replace", "path": "/spec", "value": spec}]

        def patch() -> Any:
            return self.custom.patch_namespaced_custom_object(
                crds.GROUP, crds.VERSION, self.namespace, crds.plural(kind), name, ops,
                field_manager=objects.FIELD_MANAGER, field_validation="Strict",
                _content_type="application/json-patch+json", _request_timeout=TIMEOUT)
        return self._record(kind, self._call(f"replace spec of {kind}/{name}", patch))

    def delete(self, kind: str, name: str, resource_version: str | None) -> None:
        """Delete, only if the object is still the version we planned on (precondition)."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}

        def remove() -> Any:
            return self.custom.delete_namespaced_custom_object(
                crds.GROUP, crds.VERSION, self.namespace, crds.plural(kind), name, body=body,
                _request_timeout=TIMEOUT)
        try:
            self._call(f"delete {kind}/{name}", remove)
        except KubeError as exc:
            if exc.status != 404:
                raise
        if self.cache is not None:
            self.cache.forget(kind, name)

    def patch_status(self, kind: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        def patch() -> Any:
            return self.custom.patch_namespaced_custom_object_status(
                crds.GROUP, crds.VERSION, self.namespace, crds.plural(kind), name, {"status": status},
                field_manager=objects.FIELD_MANAGER, _content_type="application/merge-patch+json",
                _request_timeout=TIMEOUT)
        return self._record(kind, self._call(f"update status of {kind}/{name}", patch))

    def read_secret(self, name: str) -> dict[str, bytes] | None:
        """The decoded data of a Secret in our namespace, or None when it does not exist."""
        import base64

        def read() -> Any:
            return self.core.read_namespaced_secret(name, self.namespace, _request_timeout=TIMEOUT)
        try:
            secret = self._call(f"read secret {name}", read)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}

    def _raw_pages(self, what: str, lister: Callable[..., Any], **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a paginated LIST, as plain dicts (one request per 500 items)."""
        return self._raw_list(what, lister, **kwargs)[0]

    def _raw_list(self, what: str, lister: Callable[..., Any], **kwargs: Any) -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            def page(token: str | None = token) -> Any:
                return lister(limit=PAGE_SIZE, _continue=token, _request_timeout=TIMEOUT,
                              _preload_content=False, **kwargs)
            body = _body(self._call(what, page))
            items += body.get("items") or []
            meta = body.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    def list_jobs(self, label_selector: str) -> list[dict[str, Any]]:
        if label_selector == jobs.JOB_SELECTOR:
            cached = self._cached("Job")
            if cached is not None:
                return cached
        return self._raw_pages("list jobs", self.batch.list_namespaced_job, namespace=self.namespace,
                               label_selector=label_selector)

    def create_job(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """Create; ``None`` when a Job of that name already exists (same name = same work)."""
        def create() -> Any:
            return self.batch.create_namespaced_job(self.namespace, job, _request_timeout=TIMEOUT,
                                                    _preload_content=False)
        try:
            return self._record("Job", _body(self._call(f"create job {job['metadata']['name']}", create)))
        except KubeError as exc:
            if exc.status == 409 and exc.reason == "AlreadyExists":
                return None
            raise

    def delete_job(self, name: str) -> None:
        def remove() -> Any:
            return self.batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background",
                                                    _request_timeout=TIMEOUT, _preload_content=False)
        try:
            self._call(f"delete job {name}", remove)
        except KubeError as exc:
            if exc.status != 404:
                raise
        if self.cache is not None:
            self.cache.forget("Job", name)

    def list_pods(self, label_selector: str) -> list[dict[str, Any]]:
        return self._raw_pages("list pods", self.core.list_namespaced_pod, namespace=self.namespace,
                               label_selector=label_selector)

    def list_nodes(self) -> list[dict[str, Any]]:
        cached = self._cached("Node")
        return cached if cached is not None else self._raw_pages("list nodes", self.core.list_node)

    def create_event(self, event: dict[str, Any]) -> None:
        """Events are best effort: a failure to record one never fails a reconcile."""
        def create() -> Any:
            return self.core.create_namespaced_event(self.namespace, event, _request_timeout=TIMEOUT,
                                                     _preload_content=False)
        try:
            self._call("create event", create)
        except KubeError as exc:
            log.warning("could not record event: %s", exc)

    def get_lease(self, name: str) -> dict[str, Any] | None:
        def read() -> Any:
            return self.coordination.read_namespaced_lease(name, self.namespace, _request_timeout=TIMEOUT,
                                                           _preload_content=False)
        try:
            return _body(self._call(f"get lease {name}", read))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def write_lease(self, lease: dict[str, Any]) -> dict[str, Any] | None:
        """Create (no resourceVersion) or replace (optimistic, with resourceVersion) a Lease;
        ``None`` when someone else wrote it first (409): the caller lost the race. Not retried."""
        name = lease["metadata"]["name"]

        def write() -> Any:
            if lease["metadata"].get("resourceVersion"):
                return self.coordination.replace_namespaced_lease(name, self.namespace, lease,
                                                                  _request_timeout=TIMEOUT, _preload_content=False)
            return self.coordination.create_namespaced_lease(self.namespace, lease, _request_timeout=TIMEOUT,
                                                             _preload_content=False)
        try:
            return _body(write())
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise _error(exc, f"write lease {name}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _error(exc, f"write lease {name}") from None
