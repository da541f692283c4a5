"""Validation results for people (text) and CI systems (JSON, JUnit XML, GitHub annotations,
SARIF 2.1.0 for code scanning).

``present`` applies the two CLI choices every format must agree on before rendering: ``--strict``
(warnings become errors: text, JSON ``valid``, JUnit failures, GitHub ``::error``, SARIF level all
say the same as the exit code) and the path prefix (file names as the user sees them from the
current directory, so annotations attach in a monorepo).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable
from itertools import groupby

from reconciler.config.diagnostics import Diagnostic
from reconciler.config.validation import ValidationResult

# GitHub shows at most 10 error and 10 warning annotations per step (50 per job); the rest are
# summarised in one notice instead of silently dropped.
GITHUB_ANNOTATIONS_PER_LEVEL = 10


def present(result: ValidationResult, *, strict: bool = False, prefix: str = "") -> ValidationResult:
    """``result`` as the CLI reports it: warnings promoted under ``strict``, paths prefixed."""
    if not strict and not prefix:
        return result

    def shown(d: Diagnostic) -> Diagnostic:
        severity = "error" if strict else d.severity
        message = f"{d.message} (warning, an error under --strict)" if strict and d.severity == "warning" else d.message
        if prefix:
            for other in d.related:  # "also used by nodes/a.yaml:12" reads from where the user is too
                message = _prefixed_mentions(message, other, prefix)
        related = tuple(prefix + other for other in d.related)
        return dataclasses.replace(d, path=prefix + d.path, severity=severity, message=message, related=related)

    return dataclasses.replace(
        result, files=[prefix + f for f in result.files], diagnostics=[shown(d) for d in result.diagnostics]
    )

def _prefixed_mentions(message: str, path: str, prefix: str) -> str:
    """Every mention of ``path`` as a whole file name in ``message``, with ``prefix`` before it."""
    pattern = re.compile(rf"(?<![\w./-]){re.escape(path)}(?![\w/-]|\.\w)")
    return pattern.sub(lambda _match: prefix + path, message)


# C0/C1 controls, line/paragraph separators, bidi overrides, and lone surrogates (bytes of a
# non-UTF-8 file name, kept by Python as U+DC80..U+DCFF).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufeff\ufffe\uffff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # the original byte
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """Control characters (a hostile file name, an escape sequence) shown, never interpreted.

    The result is always encodable as UTF-8, so writing a report can never fail.
    """
    return _CONTROL.sub(_escape, text)


def _summary(result: ValidationResult) -> str:
    errors = len(result.errors)
    warnings = len(result.diagnostics) - errors
    bad_files = len({d.path for d in result.errors})
    head = "valid" if result.ok else "invalid"
    return (
        f"{head}: {errors} error(s), {warnings} warning(s) in {bad_files} file(s); {len(result.files)} file(s) checked"
    )


def text(result: ValidationResult) -> str:
    lines: list[str] = []
    for path, group in groupby(result.diagnostics, key=lambda d: d.path):
        lines.append(printable(path))
        for d in group:
            where = f"{d.line}:{d.column or 1}" if d.line else "-"
            field = f"  {printable(d.field)}" if d.field else ""
            lines.append(f"  {where:<8} {d.severity:<7}{field}  {printable(d.message)}  [{d.rule}]")
    lines.append(_summary(result))
    return "\n".join(lines) + "\n"


def as_dict(d: Diagnostic) -> dict[str, object]:
    return {
        "file": printable(d.path),
        "line": d.line,
        "column": d.column,
        "field": printable(d.field),
        "severity": d.severity,
        "rule": d.rule,
        "message": printable(d.message),
        "related": [printable(other) for other in d.related],
    }


def json_report(result: ValidationResult) -> str:
    errors = len(result.errors)
    body = {
        "valid": result.ok,
        "filesChecked": len(result.files),
        "errors": errors,
        "warnings": len(result.diagnostics) - errors,
        "diagnostics": [as_dict(d) for d in result.diagnostics],
    }
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def junit(result: ValidationResult) -> str:
    """One testcase per checked file; each error a <failure>, warnings in <system-out>."""
    by_file: dict[str, list[Diagnostic]] = {path: [] for path in result.files}
    for d in result.diagnostics:
        by_file.setdefault(d.path, []).append(d)
    failures = sum(1 for ds in by_file.values() if any(d.severity == "error" for d in ds))
    suite = ET.Element(
        "testsuite",
        name="reconciler validate",
        tests=str(len(by_file)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    for path, ds in by_file.items():
        case = ET.SubElement(suite, "testcase", classname="config", name=printable(path), file=printable(path))
        errors = [d for d in ds if d.severity == "error"]
        if errors:
            failure = ET.SubElement(case, "failure", type=errors[0].rule, message=printable(errors[0].message))
            failure.text = "\n".join(printable(f"{d.location} {d.field} {d.message}") for d in errors)
        warnings = [d for d in ds if d.severity == "warning"]
        if warnings:
            ET.SubElement(case, "system-out").text = "\n".join(
                printable(f"warning: {d.location} {d.message}") for d in warnings
            )
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _gh_property(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A").replace(":", "%3A").replace(",", "%2C")


def _gh_message(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github(result: ValidationResult) -> str:
    """GitHub Actions workflow commands: annotations on the PR's files, within GitHub's caps."""
    lines = []
    shown = {"error": 0, "warning": 0}
    rest: list[Diagnostic] = []
    for d in result.diagnostics:
        if shown[d.severity] >= GITHUB_ANNOTATIONS_PER_LEVEL:
            rest.append(d)
            continue
        shown[d.severity] += 1
        props = [f"file={_gh_property(printable(d.path))}"]
        if d.line:
            props.append(f"line={d.line}")
            props.append(f"col={d.column or 1}")
        props.append(f"title={_gh_property(printable(d.rule + (' ' + d.field if d.field else '')))}")
        lines.append(f"::{d.severity} {','.join(props)}::{_gh_message(printable(d.message))}")
    if rest:
        errors = sum(d.severity == "error" for d in rest)
        files = len({d.path for d in rest})
        lines.append(
            f"::notice title=more problems::{errors} more error(s) and {len(rest) - errors} more warning(s) "
            f"in {files} file(s) are not annotated (GitHub shows {GITHUB_ANNOTATIONS_PER_LEVEL} per level); "
            "they are listed below"
        )
        lines += [printable(f"{d.severity}: {d.location} {d.message} [{d.rule}]") for d in rest]
    lines.append(_summary(result))
    return "\n".join(lines) + "\n"


SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _uri(path: str) -> str:
    """A relative URI reference for a file name (its bytes percent-encoded, as on disk)."""
    try:
        return urllib.parse.quote(os.fsencode(path))
    except UnicodeError:
        return urllib.parse.quote(printable(path))


def sarif(result: ValidationResult) -> str:
    """SARIF 2.1.0 (GitHub code scanning, GitLab, IDEs): one result per diagnostic."""
    from reconciler import __version__

    rules = sorted({d.rule for d in result.diagnostics})
    index = {rule: i for i, rule in enumerate(rules)}
    results = []
    for d in result.diagnostics:
        location: dict[str, object] = {
            "artifactLocation": {"uri": _uri(d.path), "uriBaseId": "%SRCROOT%"}
        }
        if d.line:
            location["region"] = {"startLine": d.line, "startColumn": d.column or 1}
        entry: dict[str, object] = {
            "ruleId": d.rule,
            "ruleIndex": index[d.rule],
            "level": d.severity,
            "message": {"text": printable(d.message)},
            "locations": [{"physicalLocation": location}],
        }
        if d.field:
            entry["properties"] = {"field": printable(d.field)}
        if d.related:
            entry["relatedLocations"] = [
                {"id": n, "physicalLocation": {"artifactLocation": {"uri": _uri(other), "uriBaseId": "%SRCROOT%"}}}
                for n, other in enumerate(d.related)
            ]
        results.append(entry)
    body = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "multinic-reconciler",
                        "version": __version__,
                        "informationUri": "https://github.com/multinic/multinic-reconciler",
                        "rules": [
                            {"id": rule, "name": rule, "shortDescription": {"text": f"config rule {rule}"}}
                            for rule in rules
                        ],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


FORMATS: dict[str, Callable[[ValidationResult], str]] = {
    "text": text,
    "json": json_report,
    "junit": junit,
    "github": github,
    "sarif": sarif,
}
