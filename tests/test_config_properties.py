"""Property-based: mutated documents thrown at the loader and validator (>= 1,000 per run).

Oracle: PyYAML's pure-Python loader plus the pure-Python ``jsonschema`` Draft202012Validator on
the same schema files (independent of libyaml and jsonschema-rs, which the validator uses).
Whatever the oracle rejects, or cannot parse, must give at least one error naming that file;
nothing may escape ``validate_repo``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from test_config_support import SCHEMAS, cluster, dump, node
from test_config_support import settings as settings_doc

from reconciler.config import formats
from reconciler.config.validation import validate_repo

DOCS_PER_EXAMPLE = 12
# 100 x DOCS_PER_EXAMPLE = 1,200 documents per run; CONFIG_FUZZ_EXAMPLES=2000 for a deeper local run.
EXAMPLES = int(os.environ.get("CONFIG_FUZZ_EXAMPLES", "100"))

ORACLES = {
    "nodes": Draft202012Validator(json.loads((SCHEMAS / "multinicnodeconfig.schema.json").read_text())),
    "clusters": Draft202012Validator(json.loads((SCHEMAS / "proxmoxcluster.schema.json").read_text())),
    "settings": Draft202012Validator(json.loads((SCHEMAS / "reconcilersettings.schema.json").read_text())),
}


class _OracleLoader(yaml.SafeLoader):
    """Pure-Python PyYAML; dates stay strings as in the contract."""

    yaml_implicit_resolvers: ClassVar[dict[Any, Any]] = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def oracle_rejects(text: str, folder: str) -> bool:
    try:
        data = yaml.load(text, Loader=_OracleLoader)  # a SafeLoader subclass
    except Exception:
        return True
    try:
        return not ORACLES[folder].is_valid(data)
    except Exception:
        return True


# --- mutations --------------------------------------------------------------------------------------

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
)
TOKENS = ["&a ", "*a", "!!python/object:os.system ", "<<: ", "---\n", "\t", "- ", ": ", "{", "]", '"', "#", "%", "\x00"]


def _pointers(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            out += _pointers(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += _pointers(value, (*prefix, i))
    return out


def _get(data: Any, pointer: tuple[Any, ...]) -> Any:
    for part in pointer:
        data = data[part]
    return data


@st.composite
def mutated_data(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        pointers = [p for p in _pointers(doc) if p]
        if not pointers:
            break
        pointer = draw(st.sampled_from(pointers))
        parent, last = _get(doc, pointer[:-1]), pointer[-1]
        action = draw(st.sampled_from(["drop", "retype", "unknown", "string", "flip", "number"]))
        current = parent[last]
        if action == "drop":
            del parent[last]
        elif action == "retype":
            parent[last] = draw(ANY_VALUE)
        elif action == "unknown":
            target = current if isinstance(current, dict) else parent
            if isinstance(target, dict):
                target[draw(st.text(min_size=1, max_size=12))] = draw(ANY_VALUE)
        elif action == "string":
            parent[last] = draw(st.text(max_size=30))
        elif action == "number":
            parent[last] = draw(st.integers(min_value=-(2**66), max_value=2**66))
        elif isinstance(current, str) and current:
            at = draw(st.integers(min_value=0, max_value=len(current) - 1))
            char = draw(st.sampled_from("0123456789abcdefABCDEFgGxX:-./ \n"))
            parent[last] = current[:at] + char + current[at + 1 :]
    return doc


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> str:
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        action = draw(st.sampled_from(["none", "truncate", "duplicate-line", "token", "char", "indent"]))
        lines = text.splitlines(keepends=True)
        if action == "truncate":
            text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
        elif action == "duplicate-line" and lines:
            i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines.insert(i, lines[i])
            text = "".join(lines)
        elif action in {"token", "char"}:
            at = draw(st.integers(min_value=0, max_value=len(text)))
            insert = draw(st.sampled_from(TOKENS)) if action == "token" else draw(st.text(min_size=1, max_size=2))
            text = text[:at] + insert + text[at:]
        elif action == "indent" and lines:
            i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[i] = draw(st.sampled_from([" ", "  ", "\t"])) + lines[i]
            text = "".join(lines)
    return text


@st.composite
def documents(draw: st.DrawFn, index: int) -> tuple[str, str, str]:
    """(folder, repo-relative path, text) of one possibly broken document."""
    kind = draw(st.sampled_from(["nodes", "nodes", "nodes", "clusters", "settings"]))
    if kind == "nodes":
        name = f"node-{index:02d}"
        base = node(name, draw(st.integers(min_value=1, max_value=60_000)))
        if draw(st.booleans()):
            extra = dict(base["spec"]["interfaces"][0], name="tenant0", proxmoxNet="net2")
            extra["macAddress"] = "02:11:00:00:00:" + f"{index:02x}"
            base["spec"]["interfaces"].append(extra)
        rel = f"nodes/{name}.yaml"
    elif kind == "clusters":
        name = f"pve-{index:02d}"
        base = cluster(name, tls={"insecureSkipVerify": draw(st.booleans())})
        rel = f"clusters/{name}.yaml"
    else:
        base, rel = settings_doc(rollout={"maxParallel": 3}), "reconciler.yaml"
    data = draw(mutated_data(base))
    text = draw(mutated_text(dump(data)))
    return kind, rel, text


STATS = {"documents": 0, "invalid": 0}


def _check_repo(docs: list[tuple[str, str, str]]) -> None:
    written: dict[str, tuple[str, str]] = {}
    for kind, rel, text in docs:
        written.setdefault(rel, (kind, text))  # one settings file at most
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel, (_, text) in written.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        result = validate_repo(root)  # must never raise
        for render in formats.FORMATS.values():
            render(result).encode("utf-8")
    failed = {d.path for d in result.errors}
    for d in result.diagnostics:
        assert d.path in written, d
        assert d.message and "\n" not in d.message, d
        if d.line is not None:
            text = written[d.path][1]
            assert 1 <= d.line <= text.count("\n") + 2 and (d.column or 0) >= 1, (d, text)
    for rel, (kind, text) in written.items():
        STATS["documents"] += 1
        if oracle_rejects(text, kind):
            STATS["invalid"] += 1
            assert rel in failed, f"{rel} is invalid but got no error:\n{text}"
        elif rel not in failed:
            assert rel in result.desired.sources.values() or kind == "settings", rel


@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(st.data())
def test_mutated_documents_never_crash_and_every_invalid_one_is_reported_on_its_file(data: st.DataObject) -> None:
    docs = [data.draw(documents(i), label=f"doc{i}") for i in range(DOCS_PER_EXAMPLE)]
    _check_repo(docs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=200), min_size=1, max_size=5))
def test_random_text_as_node_files_never_crashes(texts: list[str]) -> None:
    _check_repo([("nodes", f"nodes/node-{i:02d}.yaml", text) for i, text in enumerate(texts)])
