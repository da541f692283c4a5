"""URL routing: turn an HTTP request into a Kubernetes verb on a resource and answer it.

Independent of the socket layer: ``Router.handle(Request) -> Response``. Watch answers carry a
``stream`` iterator of JSON lines instead of a body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from multinic_sandbox.kube import discovery, rbac
from multinic_sandbox.kube.cluster import Cluster, WriteOptions, load_body
from multinic_sandbox.kube.errors import ApiError, Cause, bad_request, invalid
from multinic_sandbox.kube.resources import ResourceType
from multinic_sandbox.kube.selectors import Predicate, field_selector, label_selector
from multinic_sandbox.kube.store import Expired, Stored, encode
from multinic_sandbox.kube.tables import TABLE_CONTENT_TYPE, build_table
from multinic_sandbox.kube.validation import check_field_validation

JSON = "application/json"
WATCH_IDLE_TICK = 0.5  # seconds between liveness checks on an idle watch


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Message  # http.server's case-insensitive headers
    body: bytes = b""


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    # watch: yields encoded events, or None on idle ticks (lets the server notice hang-ups)
    stream: Iterator[bytes | None] | None = None


@dataclass(frozen=True)
class RequestInfo:
    verb: str
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


def json_response(status: int, obj: Any, content_type: str = JSON) -> Response:
    return Response(status, encode(obj), content_type)


def error_response(error: ApiError) -> Response:
    response = json_response(error.code, error.status())
    response.headers.extend(error.headers.items())
    return response


def request_info(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    """Classify a request the way the apiserver's RequestInfoFactory does."""
    parts = [p for p in path.split("/") if p]
    verb = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete"}.get(method, method.lower())
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return RequestInfo(verb)
    if not rest:
        return RequestInfo(verb, group, version)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3 and not (
            len(rest) == 3 and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if resource == "namespaces" and not namespace and name:
        namespace = name
    if not name:
        if method == "GET":
            verb = "watch" if query.get("watch") in ("true", "1") else "list"
        elif method == "DELETE":
            verb = "deletecollection"
    elif method == "GET" and query.get("watch") in ("true", "1"):
        verb = "watch"
    return RequestInfo(verb, group, version, resource, subresource, namespace, name)


def _int_param(query: Mapping[str, str], key: str, default: int = 0) -> int:
    value = query.get(key, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"invalid {key}: {value!r}") from None


def _dry_run(query: Mapping[str, str]) -> bool:
    value = query.get("dryRun", "")
    if value and value != "All":
        raise bad_request(f"Invalid dry run value: {value}: supported values: \"All\"")
    return value == "All"


def default_manager(user_agent: str) -> str:
    """The field manager the apiserver derives from a User-Agent when none is given."""
    return (user_agent or "unknown").split("/")[0] or "unknown"


class Router:
    """Serves one ``Cluster``; ``address`` is host:port for ``/api`` discovery answers."""

    def __init__(self, cluster: Cluster, address: Callable[[], str]) -> None:
        self.cluster = cluster
        self.address = address
        self.bookmark_interval = 5.0  # seconds between BOOKMARK events on a watch that asked for them
        # ``break_watches`` bumps this: open watches then end (cleanly) or drop their connection.
        self.watch_generation = 0
        self.abrupt_break = False

    def handle(self, request: Request, info: RequestInfo,
               peer_closed: Callable[[], bool] = lambda: False) -> Response:
        try:
            if not info.is_resource:
                return self._non_resource(request, info)
            return self._resource(request, info, peer_closed)
        except ApiError as error:
            return error_response(error)

    # -- discovery / openapi -------------------------------------------------------------------
    def _non_resource(self, request: Request, info: RequestInfo) -> Response:
        path = request.path.rstrip("/") or "/"
        registry = self.cluster.registry
        if request.method not in ("GET", "HEAD"):
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if path == "/version":
            return json_response(200, discovery.VERSION)
        if path in ("/healthz", "/readyz", "/livez"):
            return Response(200, b"ok", "text/plain")
        if path == "/api":
            return json_response(200, discovery.api_versions(self.address()))
        if path == "/apis":
            return json_response(200, discovery.api_group_list(registry))
        if path == "/openapi/v3":
            return json_response(200, discovery.openapi_index(registry))
        if path.startswith("/openapi/v3/"):
            gv = path[len("/openapi/v3/"):].split("/")
            group, version = ("", gv[1]) if gv[0] == "api" and len(gv) == 2 else (
                (gv[1], gv[2]) if gv[0] == "apis" and len(gv) == 3 else ("?", "?"))
            doc = discovery.openapi_document(registry, group, version)
            if doc is not None:
                return json_response(200, doc)
        if info.version and not info.resource:
            doc = discovery.resource_list(registry, info.group, info.version)
            if doc is not None:
                return json_response(200, doc)
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2 and parts[0] == "apis":
            group_doc = discovery.api_group(registry, parts[1])
            if group_doc is not None:
                return json_response(200, group_doc)
        raise ApiError(404, "the server could not find the requested resource")

    # -- resources -----------------------------------------------------------------------------
    def _resource(self, request: Request, info: RequestInfo,
                  peer_closed: Callable[[], bool]) -> Response:
        cluster = self.cluster
        rt = cluster.resource(info.group, info.version, info.resource)
        query = request.query
        namespace = info.namespace if rt.namespaced else ""
        if rt.plural == "namespaces" and rt.group == "":
            namespace = ""
        if info.subresource and not (
                (info.subresource == "status" and rt.status_subresource)
                or (info.subresource == "scale" and rt.scale_subresource)
                or (info.subresource == "log" and rt.log_subresource)):
            raise ApiError(404, "the server could not find the requested resource")
        if rt.namespaced and not namespace and info.verb not in ("list", "watch"):
            raise ApiError(404, "the server could not find the requested resource")
        if not rt.namespaced and info.namespace and rt.plural != "namespaces":
            raise ApiError(404, "the server could not find the requested resource")
        accept = request.headers.get("Accept", "") or ""
        table = "as=Table" in accept
        verb = info.verb
        if rt.plural == "selfsubjectaccessreviews":
            return self._access_review(rt, request, verb)
        if info.subresource == "scale":
            return self._scale(rt, request, info, namespace)
        if verb == "get":
            stored = cluster.get(rt, namespace, info.name)
            if info.subresource == "log":
                return Response(200, _pod_log(stored.obj).encode(), "text/plain")
            if table:
                return self._table(rt, [stored], {"resourceVersion": stored.obj["metadata"][
                    "resourceVersion"]}, query)
            return Response(200, stored.raw)
        if verb == "list":
            return self._list(rt, info, namespace or None, query, table)
        if verb == "watch":
            return self._watch(rt, info, namespace or None, query, peer_closed, table)
        opts = self._write_options(request, query)
        content_type = request.headers.get("Content-Type", "") or JSON
        if verb == "create":
            result = cluster.create(rt, namespace, request.body, opts, content_type)
            return self._written(201, result.obj, result.warnings)
        if verb == "update":
            result = cluster.update(rt, namespace, info.name, request.body, opts,
                                    info.subresource, content_type)
            return self._written(200, result.obj, result.warnings)
        if verb == "patch":
            opts.force = query.get("force") in ("true", "1")
            result = cluster.patch(rt, namespace, info.name, request.body, content_type, opts,
                                   info.subresource)
            return self._written(201 if result.created else 200, result.obj, result.warnings)
        if verb == "delete":
            options = self._delete_options(request)
            return json_response(200, cluster.delete(rt, namespace, info.name, options,
                                                     opts.dry_run))
        if verb == "deletecollection":
            options = self._delete_options(request)
            deleted = cluster.delete_collection(rt, namespace or None, self._predicate(rt, query),
                                                options, opts.dry_run)
            return json_response(200, {"kind": rt.list_kind, "apiVersion": rt.api_version,
                                       "metadata": {"resourceVersion": str(
                                           cluster.store.resource_version)},
                                       "items": deleted})
        raise ApiError(405, "the server does not allow this method on the requested resource")

    def _access_review(self, rt: ResourceType, request: Request, verb: str) -> Response:
        if verb != "create":
            raise ApiError(405, "the server does not allow this method on the requested resource")
        body = load_body(request.body, request.headers.get("Content-Type", "") or JSON)
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            raise bad_request("the body of the request did not decode to a "
                              "SelfSubjectAccessReview object")
        user = request.headers.get("Impersonate-User", "") or ""
        groups = request.headers.get_all("Impersonate-Group") or []
        who = rbac.Identity.from_impersonation(user, groups) if user else None

        def lister(plural: str, namespace: str) -> list[dict[str, Any]]:
            kind = self.cluster.resource("rbac.authorization.k8s.io", "v1", plural)
            return [s.obj for s in self.cluster.list(kind, namespace or None).items]

        status = rbac.review(who, rbac.attributes(body["spec"]), lister)
        return json_response(201, {"kind": rt.kind, "apiVersion": rt.api_version,
                                   "metadata": {"creationTimestamp": None},
                                   "spec": body["spec"], "status": status})

    def _scale(self, rt: ResourceType, request: Request, info: RequestInfo,
               namespace: str) -> Response:
        if info.verb == "get":
            return json_response(200, self.cluster.scale_of(rt, self.cluster.get(
                rt, namespace, info.name).obj))
        if info.verb not in ("update", "patch"):
            raise ApiError(405, "the server does not allow this method on the requested resource")
        opts = self._write_options(request, request.query)
        content_type = request.headers.get("Content-Type", "") or JSON
        return json_response(200, self.cluster.write_scale(rt, namespace, info.name, request.body,
                                                           content_type, opts, info.verb))

    def _write_options(self, request: Request, query: Mapping[str, str]) -> WriteOptions:
        manager = query.get("fieldManager", "")
        is_apply = "apply-patch" in (request.headers.get("Content-Type", "") or "")
        if not manager and not is_apply:
            manager = default_manager(request.headers.get("User-Agent", ""))
        if len(manager) > 128:
            raise bad_request("fieldManager: Too long: must have at most 128 bytes")
        return WriteOptions(manager=manager,
                            field_validation=check_field_validation(query.get("fieldValidation")),
                            dry_run=_dry_run(query))

    @staticmethod
    def _written(status: int, obj: dict[str, Any], warnings: list[str]) -> Response:
        response = json_response(status, obj)
        for warning in warnings:
            response.headers.append(("Warning", f"299 - {json.dumps(warning)}"))
        return response

    @staticmethod
    def _delete_options(request: Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if request.body.strip():
            try:
                options = json.loads(request.body)
            except ValueError:
                raise bad_request("invalid DeleteOptions body") from None
        for key in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
            if key in request.query and key not in options:
                options[key] = request.query[key]
        if options.get("orphanDependents") in ("true", True):
            options["orphanDependents"] = True
        policy = options.get("propagationPolicy")
        if policy and policy not in ("Orphan", "Background", "Foreground"):
            raise bad_request(f'propagationPolicy: Unsupported value: "{policy}"')
        return options

    @staticmethod
    def _predicate(rt: ResourceType, query: Mapping[str, str]) -> Predicate | None:
        labels = label_selector(query.get("labelSelector"))
        fields = field_selector(query.get("fieldSelector"), rt.field_labels)
        if labels and fields:
            return _and(labels, fields)
        return labels or fields

    def _list(self, rt: ResourceType, info: RequestInfo, namespace: str | None,
              query: Mapping[str, str], table: bool) -> Response:
        page = self.cluster.list(rt, namespace, self._predicate(rt, query),
                                 limit=_int_param(query, "limit"),
                                 continue_token=query.get("continue", ""))
        meta: dict[str, Any] = {"resourceVersion": page.resource_version}
        if page.continue_token:
            meta["continue"] = page.continue_token
            if page.remaining is not None:
                meta["remainingItemCount"] = page.remaining
        if table:
            return self._table(rt, page.items, meta, query)
        head = encode({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta})
        body = head[:-1] + b',"items":[' + b",".join(s.raw for s in page.items) + b"]}"
        return Response(200, body)

    def _table(self, rt: ResourceType, items: list[Stored], meta: dict[str, Any],
               query: Mapping[str, str]) -> Response:
        doc = build_table(rt, [s.obj for s in items], meta, self.cluster.clock.time(),
                          query.get("includeObject", "Metadata"))
        return json_response(200, doc, TABLE_CONTENT_TYPE)

    def _watch(self, rt: ResourceType, info: RequestInfo, namespace: str | None,
               query: Mapping[str, str], peer_closed: Callable[[], bool],
               table: bool = False) -> Response:
        predicate = self._predicate(rt, query)
        if info.name:
            predicate = _and(_named(info.name), predicate)
        timeout = _int_param(query, "timeoutSeconds", 1800)
        rv_param = query.get("resourceVersion", "")
        if rv_param and not rv_param.isdigit():
            raise bad_request(f"resourceVersion: Invalid value: {rv_param!r}")
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        initial = _watch_list_mode(query, rv_param, bookmarks)
        options = WatchOptions(rv_param, timeout, bookmarks, initial,
                               query.get("includeObject", "Metadata") if table else "")
        return Response(200, stream=self._events(rt, namespace, predicate, options, peer_closed),
                        content_type=TABLE_CONTENT_TYPE if table else JSON)

    def _events(self, rt: ResourceType, namespace: str | None, predicate: Predicate | None,
                options: WatchOptions, peer_closed: Callable[[], bool]) -> Iterator[bytes | None]:
        """A watch stream: initial ADDED events when asked for, then changes after ``last``.

        ``options.initial``: "legacy" (resourceVersion unset/0: the current state first),
        "watch-list" (sendInitialEvents=true: the state, then the initial-events-end bookmark)
        or "" (changes after the given resourceVersion; 410 Gone once compacted).
        """
        store = self.cluster.store
        deadline = time.monotonic() + options.timeout
        encoder = _WatchEncoder(rt, self.cluster.clock.time, options.table)
        rv_param = options.resource_version
        if options.initial:
            wanted = int(rv_param or 0)
            while store.resource_version < wanted and time.monotonic() < deadline:
                if not store.wait(store.resource_version, 0.2) and peer_closed():
                    return
            if store.resource_version < wanted:
                status = ApiError(504, f"Too large resource version: {wanted}, current: "
                                  f"{store.resource_version}", reason="Timeout").status()
                yield _event("ERROR", encode(status))
                return
            with store.lock:
                page = self.cluster.list(rt, namespace, predicate)
            last = int(page.resource_version)
            for stored in page.items:
                yield encoder.event("ADDED", stored)
            if options.initial == "watch-list":
                yield encoder.bookmark(last, initial_events_end=True)
        else:
            last = int(rv_param)
        last_bookmark = time.monotonic()
        generation = self.watch_generation
        while not store.closed and time.monotonic() < deadline:
            if self.watch_generation != generation:
                if self.abrupt_break:
                    raise ConnectionAbortedError("watch broken by the sandbox")
                return
            try:
                events = store.events_after(last)
            except Expired as expired:
                status = ApiError(410, str(expired), reason="Expired").status()
                yield _event("ERROR", encode(status))
                return
            for event in events:
                last = event.rv
                if event.bucket != rt.key or (namespace and event.namespace != namespace):
                    continue
                now_in = predicate is None or predicate(event.stored.obj)
                before_in = event.previous is not None and (
                    predicate is None or predicate(event.previous.obj))
                kind = _translate(event.type, now_in, before_in)
                if kind:
                    yield encoder.event(kind, self.cluster._convert(rt, event.stored))
            if options.bookmarks and time.monotonic() - last_bookmark > self.bookmark_interval:
                last_bookmark = time.monotonic()
                yield encoder.bookmark(last)
            if peer_closed():
                return
            store.wait(last, max(0.0, min(WATCH_IDLE_TICK, deadline - time.monotonic())))
            yield None


@dataclass(frozen=True)
class WatchOptions:
    resource_version: str
    timeout: int
    bookmarks: bool
    initial: str  # "legacy", "watch-list" or ""
    table: str  # includeObject of a Table watch ("" for plain objects)


def _watch_list_mode(query: Mapping[str, str], rv_param: str, bookmarks: bool) -> str:
    """Check the watch-list parameters the way the apiserver validates ListOptions."""
    send = query.get("sendInitialEvents", "")
    match = query.get("resourceVersionMatch", "")
    if send not in ("", "true", "false", "1", "0"):
        raise bad_request(f"sendInitialEvents: Invalid value: {send!r}")
    causes: list[Cause] = []
    if send:
        if match != "NotOlderThan":
            causes.append(Cause("resourceVersionMatch", "Forbidden: sendInitialEvents requires "
                                "setting resourceVersionMatch to NotOlderThan",
                                "FieldValueForbidden"))
        if send in ("true", "1") and not bookmarks:
            causes.append(Cause("allowWatchBookmarks", "Required value: sendInitialEvents "
                                "requires setting allowWatchBookmarks to true",
                                "FieldValueRequired"))
    elif match:
        causes.append(Cause("resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden "
                            "for watch unless sendInitialEvents is provided",
                            "FieldValueForbidden"))
    if causes:
        raise invalid("ListOptions", "meta.k8s.io", "", causes)
    if send in ("true", "1"):
        return "watch-list"
    if send:
        return ""  # sendInitialEvents=false: changes only, from the given resourceVersion
    return "legacy" if rv_param in ("", "0") else ""


class _WatchEncoder:
    """Watch events as JSON lines; for ``as=Table`` watches one single-row Table per event, the
    first carrying the column definitions (like the apiserver, so ``get -w`` keeps its columns)."""

    def __init__(self, rt: ResourceType, now: Callable[[], float], table: str) -> None:
        self.rt, self.now, self.table = rt, now, table
        self.first = True

    def event(self, kind: str, stored: Stored) -> bytes:
        if not self.table:
            return _event(kind, stored.raw)
        doc = build_table(self.rt, [stored.obj], {"resourceVersion": stored.obj["metadata"][
            "resourceVersion"]}, self.now(), self.table)
        if not self.first:
            doc["columnDefinitions"] = None
        self.first = False
        return _event(kind, encode(doc))

    def bookmark(self, rv: int, initial_events_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_events_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        if self.table:
            obj: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                                   "metadata": {"resourceVersion": str(rv)},
                                   "columnDefinitions": None, "rows": None}
        else:
            obj = {"kind": self.rt.kind, "apiVersion": self.rt.api_version, "metadata": meta}
        return _event("BOOKMARK", encode(obj))


def _named(name: str) -> Predicate:
    def matches(obj: dict[str, Any]) -> bool:
        return bool(obj["metadata"]["name"] == name)

    return matches


def _and(first: Predicate, second: Predicate | None) -> Predicate:
    if second is None:
        return first
    return lambda obj: first(obj) and second(obj)


def _translate(kind: str, now_in: bool, before_in: bool) -> str:
    """Selector-filtered watches: objects entering/leaving the selection are ADDED/DELETED."""
    if kind == "ADDED":
        return "ADDED" if now_in else ""
    if kind == "DELETED":
        return "DELETED" if before_in else ""
    if now_in and before_in:
        return "MODIFIED"
    if now_in:
        return "ADDED"
    return "DELETED" if before_in else ""


def _event(kind: str, raw: bytes) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + raw + b"}\n"


def _pod_log(pod: dict[str, Any]) -> str:
    lines = []
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        terminated = (status.get("state") or {}).get("terminated") or {}
        if terminated.get("message"):
            lines.append(str(terminated["message"]))
    return "\n".join(lines) + ("\n" if lines else "")
