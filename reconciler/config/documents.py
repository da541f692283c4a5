"""Safe YAML documents with positions.

Loading is strict and cheap: libyaml's parser, a constructor that only builds plain JSON data
(maps with string keys, lists, strings, numbers, booleans, null), and refusals for duplicate keys,
aliases, merge keys, explicit tags (``!!int``, ``!foo``), several documents, oversized or non-UTF-8
files and hostile nesting.

Plain scalars are resolved with the YAML 1.2 core schema, as kubectl's JSON view, editors and
check-jsonschema read them: ``01500`` is 1500 (no octal), ``2:30:00`` and ``52:54:00:12:34:56`` are
strings (no sexagesimal), ``yes``/``no``/``on``/``off`` are strings. A plain scalar that YAML 1.1
tools (PyYAML, Ansible, older go-yaml) read differently gets a warning that says to quote it.
Positions are not kept for every value; ``Document.locate`` re-composes the
text with marks only when a diagnostic needs a line (the common case, a valid file, never pays).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
from typing import Any, ClassVar

import yaml

from reconciler.config.diagnostics import Pointer

MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 64
# Nesting depth can never exceed the number of structure indicators in the text, so files with
# fewer than this many skip the (slower) exact depth check before the recursive composer runs.
# The budget is below libyaml's own nesting limit (1000 in the libyaml of PyYAML 6.0.4), and files
# over it are checked with PyYAML's pure-Python parser, which has none: the refusal is always ours,
# at the position of the first collection too deep, whatever libyaml would have said.
_INDICATOR_BUDGET = 500

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LoadError(Exception):
    """A file that cannot be read as one plain YAML document."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _mark(node_or_mark: Any) -> tuple[int | None, int | None]:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    if mark is None:
        return None, None
    return mark.line + 1, mark.column + 1


_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"

# The YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution), int before float.
_CORE_RULES = (
    (_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), "~nN"),
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    (_INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), "-+0123456789"),
    (
        _FLOAT,
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        "-+.0123456789",
    ),
)


def _core_resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    table: dict[Any, list[tuple[str, re.Pattern[str]]]] = {"": [(_NULL, _CORE_RULES[0][1])]}
    # ``<<`` keeps resolving to a merge key so that it is refused with its own words.
    table["<"] = [("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"))]
    for tag, rx, firsts in _CORE_RULES:
        for first in firsts:
            table.setdefault(first, []).append((tag, rx))
    return table


def _core_int(value: str) -> int:
    sign = -1 if value[:1] == "-" else 1
    digits = value.lstrip("+-")
    if digits.startswith("0o"):
        return int(digits[2:], 8)
    if digits.startswith("0x"):
        return int(digits[2:], 16)
    return sign * int(digits, 10)


def _core_float(value: str) -> float:
    lowered = value.lower()
    if lowered.endswith(".inf"):
        return -math.inf if lowered[:1] == "-" else math.inf
    if lowered == ".nan":
        return math.nan
    return float(value)


def _core_value(tag: str, value: str) -> Any:
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return value[:1] in "tT"
    if tag == _INT:
        return _core_int(value)
    if tag == _FLOAT:
        return _core_float(value)
    return value


class _StrictLoader(_Loader):  # type: ignore[misc]
    """libyaml parser + a constructor for plain JSON data only."""

    yaml_implicit_resolvers: ClassVar[dict[Any, Any]] = _core_resolvers()
    yaml_constructors: ClassVar[dict[Any, Any]] = {
        tag: ctor
        for tag, ctor in _Loader.yaml_constructors.items()
        if tag
        in {
            "tag:yaml.org,2002:null",
            "tag:yaml.org,2002:bool",
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:str",
            "tag:yaml.org,2002:seq",
            "tag:yaml.org,2002:map",
        }
    }

    def construct_undefined(self, node: Any) -> Any:
        raise LoadError(f"YAML tag {node.tag} is not allowed (plain data only)", *_mark(node))

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        # libyaml resolves an alias to the very node it names, so a node built twice is an alias:
        # refusing it here stops "billion laughs" expansion before it starts.
        if node in self.constructed_objects or node in self.recursive_objects:
            raise LoadError("YAML aliases (*name) are not allowed; write the value out", *_mark(node))
        return super().construct_object(node, deep=deep)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise LoadError(f"expected a mapping, found {node.id}", *_mark(node))
        mapping: dict[str, Any] = {}
        first_seen: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise LoadError("YAML merge keys (<<) are not allowed", *_mark(key_node))
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise LoadError(f"mapping key {_short(key)} must be a string (quote it)", *_mark(key_node))
            if key in first_seen:
                line, _ = _mark(first_seen[key])
                raise LoadError(f"duplicate key {key!r} (first defined on line {line})", *_mark(key_node))
            first_seen[key] = key_node
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _construct_core_scalar(loader: Any, node: Any) -> Any:
    return _core_value(node.tag, loader.construct_scalar(node))


_StrictLoader.add_constructor(None, _StrictLoader.construct_undefined)
for _tag in (_NULL, _BOOL, _INT, _FLOAT):
    _StrictLoader.add_constructor(_tag, _construct_core_scalar)


def decode(raw: bytes) -> str:
    """Strict UTF-8 (a leading BOM is allowed and dropped)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise LoadError(f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})", line, column) from None
    return text[1:] if text.startswith("\ufeff") else text


def _check_depth(text: str, exact: bool = False) -> None:
    """Refuse hostile nesting (and aliases) from the event stream, before the recursive composer."""
    over_budget = sum(text.count(ch) for ch in "[{-:?") >= _INDICATOR_BUDGET
    if not exact and not over_budget:
        return
    try:
        _walk_events(text, _Loader)
    except yaml.YAMLError as exc:
        if over_budget and _Loader is not yaml.SafeLoader:
            # libyaml may stop at its own nesting limit with its own words: the pure-Python parser
            # has no limit, so it finds our refusal (or the same syntax error) itself.
            with contextlib.suppress(yaml.YAMLError):
                _walk_events(text, yaml.SafeLoader)
        raise _yaml_error(exc, text) from None


def _walk_events(text: str, loader: type) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        tag = getattr(event, "tag", None)
        if tag is not None:
            raise LoadError(
                f"explicit YAML tag {tag} is not allowed (plain data only); quote the value if it is text",
                *_mark(event),
            )
        if isinstance(event, yaml.AliasEvent):
            # Refused where it is used, before anything is composed.
            raise LoadError("YAML aliases (*name) are not allowed; write the value out", *_mark(event))
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise LoadError(f"nesting deeper than {MAX_DEPTH} levels", *_mark(event))
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _yaml_error(exc: yaml.YAMLError, text: str = "") -> LoadError:
    if isinstance(exc, yaml.reader.ReaderError):
        # A character YAML does not allow (a control character): no mark, only an offset.
        position = min(exc.position, len(text))
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return LoadError(f"invalid YAML: character U+{ord(char):04X} is not allowed in YAML files", line, column)
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or exc.context or "invalid YAML"
        at_line, at_column = _mark(exc.problem_mark or exc.context_mark)
        return LoadError(f"invalid YAML: {' '.join(str(problem).split())}", at_line, at_column)
    return LoadError(f"invalid YAML: {' '.join(str(exc).split())}")


_SCALAR_TAGS = {_NULL, _BOOL, _INT, _FLOAT}
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"


class _FastLoader(_Loader):  # type: ignore[misc]
    """libyaml composer with memoised scalar resolution (keys and values repeat across files)."""

    yaml_implicit_resolvers = _StrictLoader.yaml_implicit_resolvers
    _resolved: ClassVar[dict[tuple[str, tuple[bool, bool]], str]] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            key = (value, implicit)
            tag = self._resolved.get(key)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(self._resolved) < 200_000:
                    self._resolved[key] = tag
            return tag
        return super().resolve(kind, value, implicit)  # type: ignore[no-any-return]


# A YAML warning: line, column, message.
Warning = tuple[int | None, int | None, str]

_Y11 = yaml.SafeLoader("")  # PyYAML's YAML 1.1 resolution, only to tell where readers differ
_Y11_DIFFERS: dict[str, str | None] = {}


def _yaml11_difference(value: str, tag: str) -> str | None:
    """Why a plain scalar means something else to YAML 1.1 tools, or None (memoised)."""
    if value in _Y11_DIFFERS:
        return _Y11_DIFFERS[value]
    message: str | None = None
    tag11: str = _Y11.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    if tag11 != "tag:yaml.org,2002:timestamp":  # dates were always strings in this contract
        ours = _core_value(tag, value)
        try:
            theirs = _Y11.yaml_constructors[tag11](_Y11, yaml.ScalarNode(tag11, value))
        except (ValueError, TypeError, yaml.YAMLError):
            theirs = value
        same_nan = isinstance(ours, float) and isinstance(theirs, float) and math.isnan(ours) and math.isnan(theirs)
        if (type(ours) is not type(theirs) or ours != theirs) and not same_nan:
            message = (
                f"plain value {value} means {_short(ours)} here (YAML 1.2 core schema) but {_short(theirs)} "
                "to YAML 1.1 tools (PyYAML, Ansible); quote it, or write it so that both agree"
            )
    if len(_Y11_DIFFERS) < 100_000:
        _Y11_DIFFERS[value] = message
    return message


def _note(node: Any, warnings: list[Warning] | None) -> None:
    if warnings is not None and not node.style:
        message = _yaml11_difference(node.value, node.tag)
        if message is not None:
            warnings.append((*_mark(node), message))


def _scan(node: Any, warnings: list[Warning]) -> None:
    """Warnings of a document composed on the strict path."""
    if isinstance(node, yaml.ScalarNode):
        _note(node, warnings)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _scan(item, warnings)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _scan(key, warnings)
            _scan(value, warnings)


def _data(node: Any, depth: int = 1, warnings: list[Warning] | None = None) -> Any:
    """Composed node -> plain data. Aliases were excluded before composing (no shared nodes)."""
    tag = node.tag
    if tag == _STR:
        if not node.style and node.value[:1] in _Y11_FIRSTS:
            _note(node, warnings)
        return node.value
    if tag in (_MAP, _SEQ):
        if depth > MAX_DEPTH:
            raise LoadError(f"nesting deeper than {MAX_DEPTH} levels", *_mark(node))
        depth += 1
        if tag == _SEQ:
            return [_data(item, depth, warnings) for item in node.value]
        try:
            mapping = {_data(k, depth, warnings): _data(v, depth, warnings) for k, v in node.value}
        except TypeError:  # a list or mapping as a key (``? [a, b]``)
            _mapping_problem(node)
            raise
        if len(mapping) != len(node.value) or not all(type(k) is str for k in mapping):
            _mapping_problem(node)
        return mapping
    if tag not in _SCALAR_TAGS or not isinstance(node, yaml.ScalarNode):
        if tag == "tag:yaml.org,2002:merge":
            raise LoadError("YAML merge keys (<<) are not allowed", *_mark(node))
        raise LoadError(f"YAML tag {tag} is not allowed (plain data only)", *_mark(node))
    if not node.style:
        _note(node, warnings)
    return _core_value(tag, node.value)


# First characters of plain strings that a YAML 1.1 resolver may read as something else.
_Y11_FIRSTS = frozenset(first for first in yaml.SafeLoader.yaml_implicit_resolvers if first)


def _mapping_problem(node: Any) -> None:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = _data(key_node)
        if type(key) is not str:
            raise LoadError(f"mapping key {_short(key)} must be a string (quote it)", *_mark(key_node))
        if key in seen:
            line, _ = _mark(seen[key])
            raise LoadError(f"duplicate key {key!r} (first defined on line {line})", *_mark(key_node))
        seen[key] = key_node


def parse(text: str, warnings: list[Warning] | None = None) -> Any:
    """One plain YAML document -> JSON-like data; raises ``LoadError`` with a position.

    Plain scalars that YAML 1.1 tools read differently are appended to ``warnings``.
    """
    # Without a '*' there can be no alias, so the fast path composes and converts directly (and
    # counts the depth as it goes); the strict path is rare and checks the depth beforehand.
    # Without a '!' there can be no explicit tag; with one the event stream is checked for tags.
    strict = "*" in text
    _check_depth(text, exact=strict or "!" in text)
    loader = _StrictLoader(text) if strict else _FastLoader(text)
    try:
        if not loader.check_node():
            raise LoadError("file is empty", 1, 1)
        node = loader.get_node()
        if loader.check_node():
            extra = loader.get_node()
            raise LoadError("file holds more than one YAML document (one object per file)", *_mark(extra))
        if isinstance(loader, _StrictLoader):
            if warnings is not None:
                _scan(node, warnings)
            return loader.construct_document(node)
        return _data(node, 1, warnings)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text) from None
    except RecursionError:
        raise LoadError(f"nesting deeper than {MAX_DEPTH} levels") from None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        # A constructor choking on a value: still a diagnostic on this file, never a crash.
        raise LoadError(f"invalid YAML value: {_short(str(exc))}") from None
    finally:
        loader.dispose()


def read(absolute: str) -> tuple[str, Any, list[Warning]]:
    """Text, data and YAML 1.1 warnings of one regular file, or ``LoadError`` (size cap, UTF-8,
    YAML, not a regular file) / ``OSError``."""
    return load(read_bytes(absolute))


def read_bytes(absolute: str) -> bytes:
    """The bytes of one regular file, or ``LoadError`` (size cap, not a regular file) / ``OSError``."""
    # O_NONBLOCK: a FIFO put where a file should be must not hang the reader.
    fd = os.open(absolute, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LoadError("not a regular file")
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise LoadError(f"file is larger than the limit of {MAX_FILE_BYTES} bytes")
    return raw


def load(raw: bytes) -> tuple[str, Any, list[Warning]]:
    """Text, data and YAML 1.1 warnings of a file's bytes, or ``LoadError`` (UTF-8, YAML)."""
    text = decode(raw)
    warnings: list[Warning] = []
    return text, parse(text, warnings), warnings


_RELEASED: Any = object()


class Document:
    """One file of the repo: its text, its data, and positions on demand.

    Once a file's model is built, its data tree is only needed again for the odd diagnostic that
    quotes a raw value: ``release()`` drops it (the loop keeps every valid file's document for as
    long as the file is unchanged, and the trees were 20 MB at 10,000 nodes) and ``data`` then
    parses the text again each time it is asked for."""

    __slots__ = ("_data", "_root", "path", "text")

    def __init__(self, path: str, text: str, data: Any) -> None:
        self.path = path  # repo-relative, POSIX
        self.text = text
        self._data = data
        self._root: Any = None

    def __repr__(self) -> str:
        return f"Document({self.path!r})"

    @property
    def data(self) -> Any:
        if self._data is _RELEASED:
            return parse(self.text, [])
        return self._data

    def release(self) -> None:
        self._data = _RELEASED

    def locate(self, pointer: Pointer) -> tuple[int | None, int | None]:
        """Line and column of the field at ``pointer`` (or of its closest existing parent).

        For a mapping member the key's position is returned: that is the line people look for.
        """
        if self._root is None:
            try:
                self._root = yaml.compose(self.text, Loader=_Loader)
            except yaml.YAMLError:
                return None, None
        node = self._root
        position = _mark(node) if node is not None else (None, None)
        for part in pointer:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for key_node, value_node in node.value:
                    if key_node.value == part:
                        position = _mark(key_node)
                        node = value_node
                        break
                else:
                    return position
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    return position
                node = node.value[part]
                position = _mark(node)
            else:
                return position
        return position
