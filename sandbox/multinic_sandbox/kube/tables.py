"""``meta.k8s.io/v1`` Table responses (what ``kubectl get`` prints)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from multinic_sandbox.kube import jsonpath
from multinic_sandbox.kube.clock import human_duration, parse_stamp
from multinic_sandbox.kube.resources import ResourceType

TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
Cell = Callable[[dict[str, Any], float], Any]


def _column(name: str, type_: str = "string", fmt: str = "", description: str = "",
            priority: int = 0) -> dict[str, Any]:
    return {"name": name, "type": type_, "format": fmt, "description": description,
            "priority": priority}


def _wide(name: str, type_: str = "string", description: str = "") -> dict[str, Any]:
    return _column(name, type_, "", description, 1)


def _since(stamp: Any, now: float) -> str:
    """``translateTimestampSince``: an age, or ``<unknown>`` for a missing time."""
    if not isinstance(stamp, str) or not stamp:
        return "<unknown>"
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return "<unknown>"
    return human_duration(now - parsed)


def _age(obj: dict[str, Any], now: float) -> str:
    return _since(obj.get("metadata", {}).get("creationTimestamp"), now)


def _name(obj: dict[str, Any], now: float) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type", ""): c for c in _get(obj, "status", "conditions") or ()
            if isinstance(c, dict)}


def _true(obj: dict[str, Any], kind: str) -> bool:
    return _conditions(obj).get(kind, {}).get("status") == "True"


def selector_string(selector: Any) -> str:
    """``metav1.FormatLabelSelector``: requirements sorted by key, ``<none>`` when empty."""
    if not isinstance(selector, dict):
        return "<none>"
    parts: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        parts.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        text = {"In": f"{key} in ({','.join(sorted(values))})",
                "NotIn": f"{key} notin ({','.join(sorted(values))})",
                "Exists": key, "DoesNotExist": f"!{key}"}.get(op, key)
        parts.append((key, text))
    return ",".join(text for _, text in sorted(parts)) or "<none>"


def _labels_string(labels: Any) -> str:
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _containers(template_spec: Any) -> tuple[str, str]:
    containers = (template_spec or {}).get("containers") or ()
    return (",".join(str(c.get("name", "")) for c in containers),
            ",".join(str(c.get("image", "")) for c in containers))


# -- nodes --------------------------------------------------------------------------------------
def _node_status(obj: dict[str, Any], now: float) -> str:
    ready = _conditions(obj).get("Ready")
    status = [] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    status = status or ["Unknown"]
    if _get(obj, "spec", "unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def _node_roles(obj: dict[str, Any], now: float) -> str:
    roles = set()
    for key, value in (_get(obj, "metadata", "labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key.split("/", 1)[1]:
            roles.add(key.split("/", 1)[1])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(kind: str) -> Cell:
    def cell(obj: dict[str, Any], now: float) -> str:
        for address in _get(obj, "status", "addresses") or ():
            if address.get("type") == kind:
                return str(address.get("address", ""))
        return "<none>"

    return cell


def _node_info(key: str, unknown: str = "<unknown>") -> Cell:
    return lambda o, n: str(_get(o, "status", "nodeInfo", key) or unknown)


# -- pods ---------------------------------------------------------------------------------------
def _pod_cells(obj: dict[str, Any], now: float) -> tuple[str, str, str]:
    """READY, STATUS and RESTARTS the way kubectl's pod printer derives them."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    restarts, ready, last_restart = 0, 0, ""
    reason = str(status.get("reason") or status.get("phase") or "")
    initializing = False
    init_specs = spec.get("initContainers") or ()
    for i, container in enumerate(status.get("initContainerStatuses") or ()):
        restarts += int(container.get("restartCount", 0))
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated and terminated.get("exitCode", 0) == 0:
            continue
        initializing = True
        if terminated:
            reason = "Init:" + (terminated.get("reason") or
                                f"ExitCode:{terminated.get('exitCode', 0)}")
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        break
    if not initializing:
        restarts, has_running = 0, False
        for container in reversed(status.get("containerStatuses") or ()):
            restarts += int(container.get("restartCount", 0))
            last = _get(container, "lastState", "terminated") or {}
            if last.get("finishedAt"):
                last_restart = last["finishedAt"]
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting") or {}, state.get("terminated")
            if waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                reason = (f"Signal:{terminated['signal']}" if terminated.get("signal")
                          else f"ExitCode:{terminated.get('exitCode', 0)}")
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _true(obj, "Ready") else "NotReady"
    if _get(obj, "metadata", "deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart:
        restarts_text = f"{restarts} ({_since(last_restart, now)} ago)"
    return f"{ready}/{len(spec.get('containers') or ())}", reason, restarts_text


def _pod_ip(obj: dict[str, Any], now: float) -> str:
    ips = _get(obj, "status", "podIPs") or ()
    return str((ips[0].get("ip") if ips else "") or _get(obj, "status", "podIP") or "<none>")


def _readiness_gates(obj: dict[str, Any], now: float) -> str:
    gates = _get(obj, "spec", "readinessGates") or ()
    if not gates:
        return "<none>"
    conditions = _conditions(obj)
    met = sum(1 for g in gates if conditions.get(g.get("conditionType", ""), {}).get("status")
              == "True")
    return f"{met}/{len(gates)}"


# -- jobs and deployments -------------------------------------------------------------------
def _job_status(obj: dict[str, Any], now: float) -> str:
    for kind, label in (("Complete", "Complete"), ("Failed", "Failed")):
        if _true(obj, kind):
            return label
    if _get(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    for kind in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _true(obj, kind):
            return kind
    return "Running"


def _job_completions(obj: dict[str, Any], now: float) -> str:
    succeeded = _get(obj, "status", "succeeded") or 0
    completions = _get(obj, "spec", "completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = _get(obj, "spec", "parallelism") or 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _job_duration(obj: dict[str, Any], now: float) -> str:
    status = obj.get("status") or {}
    if not status.get("startTime"):
        return ""
    end = parse_stamp(status["completionTime"]) if status.get("completionTime") else now
    return human_duration(end - parse_stamp(status["startTime"]))


def _template_cells(obj: dict[str, Any]) -> tuple[str, str]:
    return _containers(_get(obj, "spec", "template", "spec"))


# -- events ---------------------------------------------------------------------------------
def core_event(obj: dict[str, Any]) -> dict[str, Any]:
    """An events.k8s.io/v1 Event in core/v1 shape (both print with the same columns)."""
    if obj.get("apiVersion") != "events.k8s.io/v1":
        return obj
    return {"metadata": obj.get("metadata") or {}, "involvedObject": obj.get("regarding") or {},
            "reason": obj.get("reason", ""), "message": obj.get("note", ""),
            "type": obj.get("type", ""), "count": obj.get("deprecatedCount", 0),
            "firstTimestamp": obj.get("deprecatedFirstTimestamp"),
            "lastTimestamp": obj.get("deprecatedLastTimestamp"),
            "eventTime": obj.get("eventTime"), "series": obj.get("series"),
            "source": obj.get("deprecatedSource") or {},
            "reportingComponent": obj.get("reportingController", ""),
            "reportingInstance": obj.get("reportingInstance", "")}


def _event_cells(obj: dict[str, Any], now: float) -> list[Any]:
    event = core_event(obj)
    first = _since(event.get("firstTimestamp"), now)
    if not event.get("firstTimestamp"):
        first = _since(event.get("eventTime"), now)
    last = _since(event.get("lastTimestamp"), now) if event.get("lastTimestamp") else first
    count = event.get("count") or 0
    series = event.get("series")
    if isinstance(series, dict):
        last = _since(series.get("lastObservedTime"), now)
        count = series.get("count", count)
    elif not count:
        count = 1
    involved = event.get("involvedObject") or {}
    target = str(involved.get("kind", "")).lower()
    if involved.get("name"):
        target = f"{target}/{involved['name']}"
    source = event.get("source") or {}
    component, instance = source.get("component", ""), source.get("host", "")
    if not component:
        component, instance = event.get("reportingComponent", ""), event.get(
            "reportingInstance", "")
    source_text = f"{component}, {instance}" if instance else str(component)
    return [last, event.get("type", ""), event.get("reason", ""), target,
            involved.get("fieldPath", ""), source_text, str(event.get("message", "")).strip(),
            first, int(count), _name(obj, now)]


# -- services and rbac --------------------------------------------------------------------------
def _service_ports(obj: dict[str, Any], now: float) -> str:
    ports = []
    for port in _get(obj, "spec", "ports") or ():
        text = str(port.get("port", ""))
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        ports.append(f"{text}/{port.get('protocol', 'TCP')}")
    return ",".join(ports) or "<none>"


def _external_ip(obj: dict[str, Any], now: float) -> str:
    spec = obj.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    external = list(spec.get("externalIPs") or ())
    if kind == "LoadBalancer":
        ingress = _get(obj, "status", "loadBalancer", "ingress") or ()
        external = [i.get("ip") or i.get("hostname", "") for i in ingress] + external
        return ",".join(external) or "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName", ""))
    return ",".join(external) or "<none>"


def _subjects(kind: str) -> Cell:
    def cell(obj: dict[str, Any], now: float) -> str:
        names = []
        for subject in obj.get("subjects") or ():
            if subject.get("kind") != kind:
                continue
            name = subject.get("name", "")
            if kind == "ServiceAccount":
                name = f"{subject.get('namespace', '')}/{name}"
            names.append(name)
        return ", ".join(names)

    return cell


NAME = _column("Name", "string", "name", "Name must be unique within a namespace.")
AGE = _column("Age", "string", "", "CreationTimestamp is a timestamp representing the server "
              "time when this object was created.")
CREATED_AT = _column("Created At", "date")
Columns = list[tuple[dict[str, Any], Cell]]
_pod = _pod_cells

BUILTIN_COLUMNS: dict[str, Columns] = {
    "namespaces": [
        (NAME, _name), (_column("Status", description="The status of the namespace"),
                        lambda o, n: _get(o, "status", "phase") or ""), (AGE, _age)],
    "nodes": [
        (NAME, _name), (_column("Status", description="The status of the node"), _node_status),
        (_column("Roles", description="The roles of the node"), _node_roles), (AGE, _age),
        (_column("Version"), _node_info("kubeletVersion", "")),
        (_wide("Internal-IP"), _node_address("InternalIP")),
        (_wide("External-IP"), _node_address("ExternalIP")),
        (_wide("OS-Image"), _node_info("osImage")),
        (_wide("Kernel-Version"), _node_info("kernelVersion")),
        (_wide("Container-Runtime"), _node_info("containerRuntimeVersion"))],
    "pods": [
        (NAME, _name), (_column("Ready"), lambda o, n: _pod(o, n)[0]),
        (_column("Status"), lambda o, n: _pod(o, n)[1]),
        (_column("Restarts"), lambda o, n: _pod(o, n)[2]), (AGE, _age),
        (_wide("IP"), _pod_ip),
        (_wide("Node"), lambda o, n: _get(o, "spec", "nodeName") or "<none>"),
        (_wide("Nominated Node"), lambda o, n: _get(o, "status", "nominatedNodeName") or "<none>"),
        (_wide("Readiness Gates"), _readiness_gates)],
    "jobs": [
        (NAME, _name), (_column("Status", description="Status of the job."), _job_status),
        (_column("Completions"), _job_completions),
        (_column("Duration", description="Time required to complete the job."), _job_duration),
        (AGE, _age), (_wide("Containers"), lambda o, n: _template_cells(o)[0]),
        (_wide("Images"), lambda o, n: _template_cells(o)[1]),
        (_wide("Selector"), lambda o, n: selector_string(_get(o, "spec", "selector")))],
    "deployments": [
        (NAME, _name),
        (_column("Ready", description="Number of the pod with ready state"),
         lambda o, n: f"{_get(o, 'status', 'readyReplicas') or 0}/"
                      f"{_get(o, 'spec', 'replicas') or 0}"),
        (_column("Up-to-date", "integer"), lambda o, n: _get(o, "status", "updatedReplicas") or 0),
        (_column("Available", "integer"),
         lambda o, n: _get(o, "status", "availableReplicas") or 0),
        (AGE, _age), (_wide("Containers"), lambda o, n: _template_cells(o)[0]),
        (_wide("Images"), lambda o, n: _template_cells(o)[1]),
        (_wide("Selector"), lambda o, n: selector_string(_get(o, "spec", "selector")))],
    "configmaps": [
        (NAME, _name), (_column("Data", "integer"),
                        lambda o, n: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
        (AGE, _age)],
    "secrets": [
        (NAME, _name), (_column("Type"), lambda o, n: o.get("type", "Opaque")),
        (_column("Data", "integer"), lambda o, n: len(o.get("data") or {})), (AGE, _age)],
    "serviceaccounts": [
        (NAME, _name), (_column("Secrets", "integer"), lambda o, n: len(o.get("secrets") or ())),
        (AGE, _age)],
    "services": [
        (NAME, _name), (_column("Type"), lambda o, n: _get(o, "spec", "type") or "ClusterIP"),
        (_column("Cluster-IP"), lambda o, n: _get(o, "spec", "clusterIP") or "<none>"),
        (_column("External-IP"), _external_ip), (_column("Port(s)"), _service_ports),
        (AGE, _age), (_wide("Selector"), lambda o, n: _labels_string(_get(o, "spec", "selector")))],
    "leases": [
        (NAME, _name), (_column("Holder"), lambda o, n: _get(o, "spec", "holderIdentity") or ""),
        (AGE, _age)],
    "roles": [(NAME, _name), (CREATED_AT, lambda o, n: _get(o, "metadata", "creationTimestamp"))],
    "clusterroles": [(NAME, _name),
                     (CREATED_AT, lambda o, n: _get(o, "metadata", "creationTimestamp"))],
    "rolebindings": [
        (NAME, _name), (_column("Role"), lambda o, n: f"{_get(o, 'roleRef', 'kind')}/"
                                                     f"{_get(o, 'roleRef', 'name')}"),
        (AGE, _age), (_wide("Users"), _subjects("User")), (_wide("Groups"), _subjects("Group")),
        (_wide("ServiceAccounts"), _subjects("ServiceAccount"))],
    "clusterrolebindings": [
        (NAME, _name), (_column("Role"), lambda o, n: f"{_get(o, 'roleRef', 'kind')}/"
                                                     f"{_get(o, 'roleRef', 'name')}"),
        (AGE, _age), (_wide("Users"), _subjects("User")), (_wide("Groups"), _subjects("Group")),
        (_wide("ServiceAccounts"), _subjects("ServiceAccount"))],
    "customresourcedefinitions": [
        (NAME, _name), (CREATED_AT, lambda o, n: _get(o, "metadata", "creationTimestamp"))],
}
EVENT_COLUMNS = [
    _column("Last Seen"), _column("Type"), _column("Reason"), _column("Object"),
    _wide("Subobject"), _wide("Source"), _column("Message"), _wide("First Seen"),
    _wide("Count"), _column("Name", "string", "name", priority=1)]


def _custom_cell(column: dict[str, Any], obj: dict[str, Any], now: float) -> Any:
    values = jsonpath.find(obj, column.get("jsonPath", ""))
    if not values:
        return None
    value: Any = values[0] if len(values) == 1 else values
    kind = column.get("type", "string")
    if value is None:
        return None
    if kind == "date" and isinstance(value, str):
        try:
            return human_duration(now - parse_stamp(value))
        except ValueError:
            return value
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if kind in ("number", "boolean", "integer"):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return value if isinstance(value, str) else json.dumps(value)


def _custom_column(column: dict[str, Any]) -> Cell:
    def cell(obj: dict[str, Any], now: float) -> Any:
        return _custom_cell(column, obj, now)

    return cell


def build_table(rt: ResourceType, objects: list[dict[str, Any]], list_meta: dict[str, Any],
                now: float, include_object: str = "Metadata") -> dict[str, Any]:
    """A Table with every column (wide ones at priority 1: kubectl shows them with -o wide)."""
    columns: list[dict[str, Any]]
    row_cells: Callable[[dict[str, Any]], list[Any]]
    if rt.is_custom:
        cells: list[Cell] = [_name]
        columns = [NAME]
        for col in rt.printer_columns:
            columns.append(_column(col["name"], col.get("type", "string"), col.get("format", ""),
                                   col.get("description", ""), col.get("priority", 0)))
            cells.append(_custom_column(col))
        if not rt.printer_columns:
            columns.append(_column("Age", "date"))
            cells.append(_age)
        row_cells = lambda obj: [cell(obj, now) for cell in cells]  # noqa: E731
    elif rt.plural == "events":
        columns = EVENT_COLUMNS
        row_cells = lambda obj: _event_cells(obj, now)  # noqa: E731
    else:
        spec = BUILTIN_COLUMNS.get(rt.plural) or [(NAME, _name), (AGE, _age)]
        columns = [col for col, _ in spec]
        row_cells = lambda obj: [cell(obj, now) for _, cell in spec]  # noqa: E731
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": row_cells(obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj.get("metadata", {})}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": columns, "rows": rows}
