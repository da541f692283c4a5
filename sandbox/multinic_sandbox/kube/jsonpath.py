"""The JSONPath subset used by printer columns: ``.a.b``, ``[0]``, ``[*]``, ``[?(@.k=="v")]``."""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"""\.\.?(?P<field>[A-Za-z0-9_\-$/]+)      # .field
      | \[(?P<index>-?\d+|\*)\]                 # [0] / [*]
      | \[\?\(@\.(?P<fpath>[A-Za-z0-9_.\-]+)\s*(?P<op>==|!=)\s*(?P<value>"[^"]*"|'[^']*'|[^)]+)\)\]
      | \[['"](?P<quoted>[^'"]+)['"]\]
      | \.(?P<star>\*)
    """,
    re.VERBOSE,
)


def _lookup(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def find(obj: Any, expression: str) -> list[Any]:
    """All values ``expression`` selects in ``obj`` (an empty list when nothing matches)."""
    expression = expression.strip()
    if expression.startswith("{") and expression.endswith("}"):
        expression = expression[1:-1]
    expression = expression.removeprefix("$")
    nodes: list[Any] = [obj]
    pos = 0
    while pos < len(expression):
        match = _TOKEN.match(expression, pos)
        if not match:
            return []
        pos = match.end()
        nxt: list[Any] = []
        for node in nodes:
            if match.group("field") or match.group("quoted"):
                name = match.group("field") or match.group("quoted")
                if isinstance(node, dict) and name in node:
                    nxt.append(node[name])
            elif match.group("index"):
                if isinstance(node, list):
                    idx = match.group("index")
                    if idx == "*":
                        nxt.extend(node)
                    elif -len(node) <= int(idx) < len(node):
                        nxt.append(node[int(idx)])
            elif match.group("fpath"):
                raw = match.group("value").strip()
                wanted: Any = raw[1:-1] if raw[:1] in "\"'" else raw
                for item in node if isinstance(node, list) else []:
                    got = _lookup(item, match.group("fpath"))
                    got = str(got).lower() if isinstance(got, bool) else got
                    equal = str(got) == str(wanted) if got is not None else False
                    if equal == (match.group("op") == "=="):
                        nxt.append(item)
            elif match.group("star"):
                if isinstance(node, dict):
                    nxt.extend(node.values())
                elif isinstance(node, list):
                    nxt.extend(node)
        nodes = nxt
    return nodes
