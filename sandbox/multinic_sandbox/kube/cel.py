"""CEL validation rules of CRDs (``x-kubernetes-validations``), evaluated with cel-python.

* ``crd_rule_causes(crd)``: at CRD create/update every rule is compiled; a rule that does not
  parse, or calls a function neither CEL nor the Kubernetes libraries implemented here know, is
  a 422 cause on the CRD (``...x-kubernetes-validations[i].rule``), so nothing is silently
  accepted that would never be checked.
* ``rule_causes(obj, schema, old)``: on every write of a custom resource each rule runs with
  ``self`` (and ``oldSelf`` for transition rules, on updates) bound to the value at its schema
  node; a false result is a cause with the rule's ``message`` (or ``messageExpression``),
  ``reason`` and ``fieldPath``, worded like the apiserver's. Unchanged values are not
  re-checked on update (validation ratcheting).

Kubernetes' extension libraries implemented on top of cel-python: strings (``charAt``,
``indexOf``, ``lastIndexOf``, ``lowerAscii``, ``upperAscii``, ``replace``, ``split``,
``substring``, ``trim``, ``join``, ``reverse``), lists (``isSorted``, ``sum``, ``max``,
``indexOf``, ``lastIndexOf``, ``slice``, ``flatten``), regex (``find``, ``findAll``) and
``isIP``/``isCIDR``. Not implemented (refused at CRD creation): the ip()/cidr() objects, url,
quantity, sets, format and authorizer libraries.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from multinic_sandbox.kube.errors import Cause

# The CEL spec's macros and standard functions as cel-python resolves them.
MACROS = frozenset({"has", "dyn", "all", "exists", "exists_one", "map", "filter"})
# Kubernetes CEL library functions this module does not implement: named in the refusal.
KUBERNETES_UNIMPLEMENTED = frozenset({
    "ip", "cidr", "url", "isURL", "quantity", "isQuantity", "format", "quote", "sets",
    "authorizer", "isGreaterThan", "isLessThan", "compareTo", "containsIP", "containsCIDR",
    "family", "isUnspecified", "isLoopback", "isLinkLocalMulticast", "isLinkLocalUnicast",
    "isGlobalUnicast", "prefixLength", "masked", "getScheme", "getHost", "getHostname",
    "getPort", "getEscapedPath", "getQuery", "asInteger", "asApproximateFloat", "sign", "add",
    "sub", "isInteger", "optional", "of", "ofNonZeroValue", "hasValue", "value", "orValue",
    "base64", "encode", "decode", "math", "greatest", "least", "ceil", "floor", "round",
    "semver", "isSemver"})


class RuleError(Exception):
    """A rule that cannot be compiled or evaluated here."""


def _celpy() -> Any:
    import celpy

    return celpy


def _types() -> Any:
    from celpy import celtypes

    return celtypes


# -- Kubernetes extension functions ---------------------------------------------------------------
def _string(value: Any) -> Any:
    return _types().StringType(value)


def _int(value: int) -> Any:
    return _types().IntType(value)


def _list(values: list[Any]) -> Any:
    return _types().ListType(values)


def _char_at(s: str, i: int) -> Any:
    if i < 0 or i > len(s):
        raise ValueError(f"index out of range: {i}")
    return _string(s[i] if i < len(s) else "")


def _index_of(target: Any, item: Any, offset: int = 0) -> Any:
    if isinstance(target, str):
        if offset < 0 or offset > len(target):
            raise ValueError(f"index out of range: {offset}")
        return _int(target.find(str(item), int(offset)))
    for i, value in enumerate(target):
        if value == item:
            return _int(i)
    return _int(-1)


def _last_index_of(target: Any, item: Any, offset: int | None = None) -> Any:
    if isinstance(target, str):
        end = len(target) if offset is None else int(offset) + len(str(item))
        return _int(target.rfind(str(item), 0, end))
    for i in range(len(target) - 1, -1, -1):
        if target[i] == item:
            return _int(i)
    return _int(-1)


def _lower_ascii(s: str) -> Any:
    return _string("".join(c.lower() if c.isascii() else c for c in s))


def _upper_ascii(s: str) -> Any:
    return _string("".join(c.upper() if c.isascii() else c for c in s))


def _replace(s: str, old: str, new: str, n: int = -1) -> Any:
    return _string(s.replace(old, new, int(n)))


def _split(s: str, sep: str, n: int = -1) -> Any:
    n = int(n)
    if n == 0:
        return _list([])
    parts = s.split(sep, n - 1) if n > 0 else s.split(sep) if sep else list(s)
    return _list([_string(p) for p in parts])


def _substring(s: str, start: int, end: int | None = None) -> Any:
    stop = len(s) if end is None else int(end)
    if not 0 <= int(start) <= stop <= len(s):
        raise ValueError(f"substring out of range: [{start}:{stop}]")
    return _string(s[int(start):stop])


def _trim(s: str) -> Any:
    return _string(s.strip())


def _join_strings(items: Any, sep: str = "") -> Any:
    return _string(sep.join(str(i) for i in items))


def _reverse(target: Any) -> Any:
    if isinstance(target, str):
        return _string(target[::-1])
    return _list(list(reversed(target)))


def _is_sorted(items: Any) -> Any:
    values = list(items)
    return _types().BoolType(all(a <= b for a, b in itertools.pairwise(values)))


def _sum(items: Any) -> Any:
    values = list(items)
    if not values:
        return _int(0)
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


def _max(items: Any) -> Any:
    values = list(items)
    if not values:
        raise ValueError("max called on an empty list")
    return max(values)


def _slice(items: Any, start: int, end: int) -> Any:
    if not 0 <= int(start) <= int(end) <= len(items):
        raise ValueError(f"slice out of range: [{start}:{end}]")
    return _list(list(items)[int(start):int(end)])


def _flatten(items: Any, depth: int = 1) -> Any:
    out: list[Any] = []
    for item in items:
        if isinstance(item, list) and depth > 0:
            out.extend(_flatten(item, depth - 1))
        else:
            out.append(item)
    return _list(out)


def _find(s: str, pattern: str) -> Any:
    match = re.search(pattern, s)
    return _string(match.group(0) if match else "")


def _find_all(s: str, pattern: str, n: int = -1) -> Any:
    found = [m.group(0) for m in re.finditer(pattern, s)]
    if int(n) >= 0:
        found = found[:int(n)]
    return _list([_string(f) for f in found])


def _is_ip(s: str) -> Any:
    try:
        ipaddress.ip_address(s)
        ok = "%" not in s and not (":" not in s and any(p != str(int(p)) for p in s.split(".")))
    except ValueError:
        ok = False
    return _types().BoolType(ok)


def _is_cidr(s: str) -> Any:
    try:
        ipaddress.ip_network(s, strict=False)
        ok = "/" in s
    except ValueError:
        ok = False
    return _types().BoolType(ok)


EXTENSIONS: dict[str, Callable[..., Any]] = {
    "charAt": _char_at, "indexOf": _index_of, "lastIndexOf": _last_index_of,
    "lowerAscii": _lower_ascii, "upperAscii": _upper_ascii, "replace": _replace,
    "split": _split, "substring": _substring, "trim": _trim, "join": _join_strings,
    "reverse": _reverse, "isSorted": _is_sorted, "sum": _sum, "max": _max, "slice": _slice,
    "flatten": _flatten, "find": _find, "findAll": _find_all, "isIP": _is_ip,
    "isCIDR": _is_cidr,
}


# -- compiling ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Compiled:
    rule: dict[str, Any]
    program: Any
    message_program: Any
    transition: bool  # refers to oldSelf: only evaluated on updates with an old value


# cel-python's transpiler (about 6x faster than its interpreter, which matters for fleets of
# custom resources) runs the generated code in the globals of ``celpy.evaluation`` and names
# extension functions by module path, and it keeps per-evaluation state there: so this package
# is made visible there once, and evaluations run one at a time.
_EVALUATION_LOCK = threading.RLock()


@functools.cache
def _environment() -> Any:
    import celpy.evaluation

    import multinic_sandbox

    celpy.evaluation.result.__globals__.setdefault("multinic_sandbox", multinic_sandbox)
    return _celpy().Environment(runner_class=_celpy().CompiledRunner)


@functools.cache
def _known_functions() -> frozenset[str]:
    from celpy.evaluation import base_functions

    return frozenset(base_functions) | frozenset(EXTENSIONS) | MACROS | {"min", "reduce"}


def _called_names(ast: Any) -> list[str]:
    names: list[str] = []
    for tree in ast.iter_subtrees():
        if tree.data == "member_dot_arg" and len(tree.children) > 1:
            names.append(str(tree.children[1]))
        elif tree.data == "ident_arg" and tree.children:
            names.append(str(tree.children[0]))
    return names


def _uses(ast: Any, name: str) -> bool:
    return any(tree.data == "ident" and str(tree.children[0]) == name
               for tree in ast.iter_subtrees())


def _compile(source: str) -> tuple[Any, Any]:
    celpy = _celpy()
    try:
        ast = _environment().compile(source)
    except celpy.CELParseError as exc:
        raise RuleError(f"compilation failed: ERROR: <input>: Syntax error: "
                        f"{' '.join(str(exc).split())}") from None
    unknown = [n for n in _called_names(ast) if n not in _known_functions()]
    for name in unknown:
        if name in KUBERNETES_UNIMPLEMENTED:
            raise RuleError(f"compilation failed: the kube sandbox cannot evaluate {name!r} (a "
                            "Kubernetes CEL library function it does not implement)")
        raise RuleError(f"compilation failed: ERROR: <input>: undeclared reference to {name!r}")
    try:
        with _EVALUATION_LOCK:
            program = _environment().program(ast, functions=EXTENSIONS)
    except Exception:  # a construct the transpiler does not handle: interpret it instead
        program = celpy.InterpretedRunner(_environment(), ast, EXTENSIONS)
    return ast, program


@functools.cache
def _compiled(rule_json: str) -> Compiled:
    rule = json.loads(rule_json)
    ast, program = _compile(str(rule.get("rule", "")))
    message_program = None
    if rule.get("messageExpression"):
        _, message_program = _compile(str(rule["messageExpression"]))
    return Compiled(rule, program, message_program, _uses(ast, "oldSelf"))


def compile_rule(rule: dict[str, Any]) -> Compiled:
    return _compiled(json.dumps(rule, sort_keys=True))


def _rule_nodes(schema: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    """(schema path as the apiserver names it, schema node) for every node carrying rules."""
    out: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(schema, dict):
        return out
    if schema.get("x-kubernetes-validations"):
        out.append((path, schema))
    for key, sub in (schema.get("properties") or {}).items():
        out += _rule_nodes(sub, f"{path}.properties[{key}]")
    if isinstance(schema.get("items"), dict):
        out += _rule_nodes(schema["items"], f"{path}.items")
    if isinstance(schema.get("additionalProperties"), dict):
        out += _rule_nodes(schema["additionalProperties"], f"{path}.additionalProperties")
    return out


def crd_rule_causes(crd: dict[str, Any]) -> list[Cause]:
    """Refuse rules that do not compile (or that this sandbox could not evaluate)."""
    causes: list[Cause] = []
    for i, version in enumerate((crd.get("spec") or {}).get("versions") or ()):
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        base = f"spec.versions[{i}].schema.openAPIV3Schema"
        for path, node in _rule_nodes(schema, base):
            for j, rule in enumerate(node.get("x-kubernetes-validations") or ()):
                where = f"{path}.x-kubernetes-validations[{j}]"
                if not isinstance(rule, dict) or not rule.get("rule"):
                    causes.append(Cause(f"{where}.rule", "Required value", "FieldValueRequired"))
                    continue
                try:
                    compile_rule(rule)
                except RuleError as error:
                    field = "messageExpression" if rule.get("messageExpression") and \
                        "messageExpression" in str(error) else "rule"
                    causes.append(Cause(f"{where}.{field}", f"Invalid value: "
                                        f"{json.dumps(rule['rule'])}: {error}"))
    return causes


# -- evaluating -----------------------------------------------------------------------------------
_MISSING = object()


def _type_word(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _self_value(value: Any, at_root: bool) -> Any:
    if at_root and isinstance(value, dict) and isinstance(value.get("metadata"), dict):
        # rules see only name and generateName of the object's metadata
        meta = {k: v for k, v in value["metadata"].items() if k in ("name", "generateName")}
        value = {**value, "metadata": meta}
    return _celpy().json_to_cel(value)


def _run(program: Any, self_value: Any, old_value: Any, at_root: bool) -> Any:
    activation = {"self": _self_value(self_value, at_root)}
    if old_value is not _MISSING:
        activation["oldSelf"] = _self_value(old_value, at_root)
    with _EVALUATION_LOCK:
        return program.evaluate(activation)


def _failure(rule: dict[str, Any], compiled: Compiled, path: str, value: Any, old: Any,
             at_root: bool) -> Cause:
    message = str(rule.get("message") or "")
    if compiled.message_program is not None:
        try:
            produced = _run(compiled.message_program, value, old, at_root)
            if isinstance(produced, str) and produced.strip() and "\n" not in produced:
                message = str(produced)
        except Exception:  # the apiserver falls back to message on any error
            pass
    if not message:
        message = f"failed rule: {rule.get('rule')}"
    field_path = str(rule.get("fieldPath") or "")
    if field_path:
        path = path + field_path if field_path.startswith((".", "[")) else _join(path, field_path)
        path = path.lstrip(".")
    reason = str(rule.get("reason") or "FieldValueInvalid")
    if reason == "FieldValueForbidden":
        return Cause(path, f"Forbidden: {message}", reason)
    if reason == "FieldValueRequired":
        return Cause(path, f"Required value: {message}", reason)
    if reason == "FieldValueDuplicate":
        return Cause(path, f"Duplicate value: {json.dumps(_type_word(value))}: {message}", reason)
    return Cause(path, f"Invalid value: {json.dumps(_type_word(value))}: {message}",
                 "FieldValueInvalid")


def _check_node(value: Any, schema: dict[str, Any], path: str, old: Any, at_root: bool,
                causes: list[Cause]) -> None:
    if old is not _MISSING and old == value:
        return  # ratcheting: an unchanged value is not re-validated
    for rule in schema.get("x-kubernetes-validations") or ():
        try:
            compiled = compile_rule(rule)
        except RuleError as error:  # the CRD was accepted elsewhere (e.g. an older sandbox)
            causes.append(Cause(path, f"Internal error: {error}", "InternalError"))
            continue
        if compiled.transition and old is _MISSING:
            continue
        try:
            result = _run(compiled.program, value, old, at_root)
        except Exception as exc:  # cel-python raises CELEvalError and others
            detail = exc.args[0] if exc.args else exc
            detail = str(detail).split(" (in activation")[0]
            causes.append(Cause(path, f"Invalid value: {json.dumps(_type_word(value))}: "
                                f"{detail} evaluating rule: {rule.get('rule')}"))
            continue
        if not isinstance(result, _types().BoolType | bool):
            causes.append(Cause(path, f"Invalid value: {json.dumps(_type_word(value))}: rule "
                                f"did not evaluate to a bool: {rule.get('rule')}"))
        elif not result:
            causes.append(_failure(rule, compiled, path, value, old, at_root))


def _walk(value: Any, schema: Any, path: str, old: Any, causes: list[Cause],
          at_root: bool = False) -> None:
    if not isinstance(schema, dict) or value is None:
        return
    _check_node(value, schema, path, old, at_root, causes)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is None or (at_root and key == "metadata"):
                continue
            old_item = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
            _walk(item, sub, _join(path, key), old_item, causes)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = schema["items"]
        keys = schema.get("x-kubernetes-list-map-keys") or ()
        old_by_key: dict[str, Any] = {}
        if schema.get("x-kubernetes-list-type") == "map" and isinstance(old, list):
            for entry in old:
                if isinstance(entry, dict):
                    old_by_key[json.dumps([entry.get(k) for k in keys])] = entry
        for i, item in enumerate(value):
            old_item = _MISSING
            if old_by_key and isinstance(item, dict):
                old_item = old_by_key.get(json.dumps([item.get(k) for k in keys]), _MISSING)
            _walk(item, items, f"{path}[{i}]", old_item, causes)


_HAS_RULES: dict[int, tuple[Any, bool]] = {}


def has_rules(schema: Any) -> bool:
    """Whether any node of ``schema`` carries rules (cached per schema object: writes are hot)."""
    cached = _HAS_RULES.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    found = bool(_rule_nodes(schema, ""))
    _HAS_RULES[id(schema)] = (schema, found)
    return found


def rule_causes(obj: dict[str, Any], schema: dict[str, Any] | None,
                old: dict[str, Any] | None = None) -> list[Cause]:
    """Evaluate every rule of a CRD schema against a (validated, defaulted) custom resource."""
    causes: list[Cause] = []
    if schema and has_rules(schema):
        _walk(obj, schema, "", old if old is not None else _MISSING, causes, at_root=True)
    return causes
