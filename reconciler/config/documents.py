"""Safe YAML documents with positions.

Loading is strict and cheap: libyaml's parser, a constructor that only builds plain JSON data
(maps with string keys, lists, strings, numbers, booleans, null), and refusals for duplicate keys,
aliases, merge keys, custom tags, several documents, oversized or non-UTF-8 files and hostile
nesting. Positions are not kept for every value; ``Document.locate`` re-composes the text with
marks only when a diagnostic needs a line (the common case, a valid file, never pays for it).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
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


class _StrictLoader(_Loader):  # type: ignore[misc]
    """libyaml parser + a constructor for plain JSON data only."""

    # YAML 1.1 timestamps would become datetime objects; in this contract they are strings.
    yaml_implicit_resolvers: ClassVar[dict[Any, Any]] = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in _Loader.yaml_implicit_resolvers.items()
    }
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


_StrictLoader.add_constructor(None, _StrictLoader.construct_undefined)


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


_SCALARS = _StrictLoader("")  # only its scalar constructors are used, never its parser
_SCALAR_TAGS = {
    "tag:yaml.org,2002:null": _StrictLoader.construct_yaml_null,
    "tag:yaml.org,2002:bool": _StrictLoader.construct_yaml_bool,
    "tag:yaml.org,2002:int": _StrictLoader.construct_yaml_int,
    "tag:yaml.org,2002:float": _StrictLoader.construct_yaml_float,
}
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


def _data(node: Any, depth: int = 1) -> Any:
    """Composed node -> plain data. Aliases were excluded before composing (no shared nodes)."""
    tag = node.tag
    if tag == _STR:
        return node.value
    if tag in (_MAP, _SEQ):
        if depth > MAX_DEPTH:
            raise LoadError(f"nesting deeper than {MAX_DEPTH} levels", *_mark(node))
        depth += 1
        if tag == _SEQ:
            return [_data(item, depth) for item in node.value]
        try:
            mapping = {_data(k, depth): _data(v, depth) for k, v in node.value}
        except TypeError:  # a list or mapping as a key (``? [a, b]``)
            _mapping_problem(node)
            raise
        if len(mapping) != len(node.value) or not all(type(k) is str for k in mapping):
            _mapping_problem(node)
        return mapping
    construct = _SCALAR_TAGS.get(tag)
    if construct is None or not isinstance(node, yaml.ScalarNode):
        if tag == "tag:yaml.org,2002:merge":
            raise LoadError("YAML merge keys (<<) are not allowed", *_mark(node))
        raise LoadError(f"YAML tag {tag} is not allowed (plain data only)", *_mark(node))
    return construct(_SCALARS, node)


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


def parse(text: str) -> Any:
    """One plain YAML document -> JSON-like data; raises ``LoadError`` with a position."""
    # Without a '*' there can be no alias, so the fast path composes and converts directly (and
    # counts the depth as it goes); the strict path is rare and checks the depth beforehand.
    strict = "*" in text
    _check_depth(text, exact=strict)
    loader = _StrictLoader(text) if strict else _FastLoader(text)
    try:
        if not loader.check_node():
            raise LoadError("file is empty", 1, 1)
        node = loader.get_node()
        if loader.check_node():
            extra = loader.get_node()
            raise LoadError("file holds more than one YAML document (one object per file)", *_mark(extra))
        if isinstance(loader, _StrictLoader):
            return loader.construct_document(node)
        return _data(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text) from None
    except RecursionError:
        raise LoadError(f"nesting deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


def read(absolute: str) -> tuple[str, Any]:
    """Text and data of one file, or ``LoadError`` (size cap, UTF-8, YAML) / ``OSError``."""
    with open(absolute, "rb") as handle:
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise LoadError(f"file is larger than the limit of {MAX_FILE_BYTES} bytes")
    text = decode(raw)
    return text, parse(text)


@dataclass
class Document:
    """One file of the repo: its text, its data, and positions on demand."""

    path: str  # repo-relative, POSIX
    text: str
    data: Any
    _root: Any = field(default=None, repr=False)

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
