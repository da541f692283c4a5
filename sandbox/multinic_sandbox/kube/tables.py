"""``meta.k8s.io/v1`` Table responses (what ``kubectl get`` prints)."""

from __future__ import annotations

import json
from collections.abc import Callable
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


def _age(obj: dict[str, Any], now: float) -> str:
    stamp = obj.get("metadata", {}).get("creationTimestamp")
    return human_duration(now - parse_stamp(stamp)) if stamp else "<unknown>"


def _name(obj: dict[str, Any], now: float) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _job_status(obj: dict[str, Any], now: float) -> str:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return str(cond["type"])
    return "Suspended" if (obj.get("spec") or {}).get("suspend") else "Running"


def _job_duration(obj: dict[str, Any], now: float) -> str:
    status = obj.get("status") or {}
    if not status.get("startTime"):
        return ""
    end = parse_stamp(status["completionTime"]) if status.get("completionTime") else now
    return human_duration(end - parse_stamp(status["startTime"]))


def _pod_status(obj: dict[str, Any], now: float) -> str:
    status = obj.get("status") or {}
    for cs in status.get("containerStatuses") or ():
        terminated = (cs.get("state") or {}).get("terminated")
        if terminated and terminated.get("reason"):
            return str(terminated["reason"])
    return str(status.get("phase", "Pending"))


def _pod_ready(obj: dict[str, Any], now: float) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or ()
    total = len((obj.get("spec") or {}).get("containers") or ())
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


BUILTIN_COLUMNS: dict[str, list[tuple[dict[str, Any], Cell]]] = {
    "namespaces": [
        (_column("Status"), lambda o, n: (o.get("status") or {}).get("phase", "")),
    ],
    "pods": [
        (_column("Ready"), _pod_ready),
        (_column("Status"), _pod_status),
        (_column("Restarts", "string"), lambda o, n: str(sum(
            c.get("restartCount", 0) for c in (o.get("status") or {}).get("containerStatuses")
            or ()))),
    ],
    "jobs": [
        (_column("Status"), _job_status),
        (_column("Completions"), lambda o, n: f"{(o.get('status') or {}).get('succeeded', 0)}/"
         f"{(o.get('spec') or {}).get('completions', 1)}"),
        (_column("Duration"), _job_duration),
    ],
    "configmaps": [
        (_column("Data", "integer"), lambda o, n: len(o.get("data") or {})
         + len(o.get("binaryData") or {})),
    ],
    "secrets": [
        (_column("Type"), lambda o, n: o.get("type", "Opaque")),
        (_column("Data", "integer"), lambda o, n: len(o.get("data") or {})),
    ],
    "leases": [
        (_column("Holder"), lambda o, n: (o.get("spec") or {}).get("holderIdentity", "")),
    ],
}


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
    name_col = _column("Name", "string", "name", "Name must be unique within a namespace.")
    columns: list[dict[str, Any]] = [name_col]
    cells: list[Cell] = [_name]
    if rt.is_custom and rt.printer_columns:
        for col in rt.printer_columns:
            columns.append(_column(col["name"], col.get("type", "string"), col.get("format", ""),
                                   col.get("description", ""), col.get("priority", 0)))
            cells.append(_custom_column(col))
    elif rt.plural == "customresourcedefinitions":
        columns.append(_column("Created At", "date"))
        cells.append(lambda o, n: o.get("metadata", {}).get("creationTimestamp", ""))
    else:
        for col, cell in BUILTIN_COLUMNS.get(rt.plural, []) if not rt.is_custom else []:
            columns.append(col)
            cells.append(cell)
        columns.append(_column("Age", "date"))
        cells.append(_age)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [cell(obj, now) for cell in cells]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj.get("metadata", {})}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": columns, "rows": rows}
