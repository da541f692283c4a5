"""Hostile and broken input: every class is reported on its file (with a line where one exists)
and a reason, nothing crashes, and the rest of the repo is still checked."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from test_config_support import (
    cluster,
    dump,
    errors,
    make_repo,
    node,
    only,
    validate,
    warnings,
    write,
)

from reconciler.config import documents, formats
from reconciler.config.documents import MAX_FILE_BYTES, LoadError
from reconciler.config.validation import RepoUnreadable, validate_repo

VALID = dump(node())


def _one_bad_node(tmp_path: Path, text: str | bytes, name: str = "worker-01") -> tuple[Path, list]:
    """A repo with one good node and one bad file; returns the errors of the bad file."""
    root = make_repo(tmp_path / "repo", {"nodes/good-01.yaml": node("good-01", 7), f"nodes/{name}.yaml": text})
    result = validate(root)
    assert "good-01" in result.desired.nodes, "a bad file must not stop the others"
    assert all(d.path == f"nodes/{name}.yaml" for d in result.errors), result.errors
    assert name in result.desired.blocked["MultiNicNodeConfig"]
    return root, result.errors


# --- malformed YAML -------------------------------------------------------------------------------

MALFORMED = [
    # (case, text, line, column, words)
    ("unclosed-flow", "apiVersion: v1\nspec: {interfaces: [\n", 3, 1, "invalid YAML"),
    ("tab-indent", "apiVersion: v1\nspec:\n\tinterfaces: []\n", 3, 1, "invalid YAML"),
    ("bad-indent", "apiVersion: v1\nkind: x\n  metadata: y\n", 3, 11, "invalid YAML"),
    ("unclosed-quote", 'apiVersion: "v1\nkind: x\n', 3, 1, "invalid YAML"),
    ("key-without-colon", "apiVersion: v1\njust some words\nkind: x\n", 3, 1, "invalid YAML"),
]


@pytest.mark.parametrize(("text", "line", "column", "words"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_yaml_is_reported_with_its_position(
    tmp_path: Path, text: str, line: int, column: int, words: str
) -> None:
    _, found = _one_bad_node(tmp_path, text)
    d = only(found)
    assert (d.rule, d.line, d.column) == ("yaml", line, column)
    assert d.message.startswith(words)


# --- strictness of the loader ----------------------------------------------------------------------


def test_a_duplicate_key_is_reported_on_the_second_key_naming_the_first(tmp_path: Path) -> None:
    text = VALID.replace("  - name: storage0\n", "  - name: storage0\n    name: storage1\n")
    _, found = _one_bad_node(tmp_path, text)
    d = only(found)
    assert (d.rule, d.line, d.column) == ("yaml", 8, 5)
    assert d.message == "duplicate key 'name' (first defined on line 7)"


def test_a_duplicate_key_is_reported_on_the_strict_path_too(tmp_path: Path) -> None:
    # A '*' anywhere (here in a comment) sends the file through the alias-refusing constructor.
    text = "# *note*\n" + VALID.replace("kind:", "kind: x\nkind:")
    d = only(_one_bad_node(tmp_path, text)[1])
    assert (d.line, d.message) == (4, "duplicate key 'kind' (first defined on line 3)")


def test_several_documents_in_one_file_are_refused(tmp_path: Path) -> None:
    d = only(_one_bad_node(tmp_path, VALID + "---\n" + VALID)[1])
    assert d.message == "file holds more than one YAML document (one object per file)"
    assert d.line == VALID.count("\n") + 2


def test_an_explicit_document_start_and_end_are_fine(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"nodes/worker-01.yaml": "---\n" + VALID + "...\n"})
    assert validate(root).ok


@pytest.mark.parametrize(
    ("text", "words", "line"),
    [
        ("apiVersion: &v multinic.io/v1alpha1\nkind: *v\n", "YAML aliases (*name) are not allowed", 2),
        ("a: &a {x: 1}\nb:\n  <<: *a\n", "YAML aliases (*name) are not allowed", 3),
        ("a:\n  <<: {x: 1}\n  y: 2\n", "YAML merge keys (<<) are not allowed", 2),
        ("a: !!python/object/apply:os.system [echo pwned]\n", "YAML tag tag:yaml.org,2002:python/object/apply", 1),
        ("a: !!python/name:os.system\n", "is not allowed (plain data only)", 1),
        ("a: !Ref other\n", "YAML tag !Ref is not allowed", 1),
        ("a: !!binary aGVsbG8=\n", "YAML tag tag:yaml.org,2002:binary is not allowed", 1),
        ("a: !!set {x, y}\n", "YAML tag tag:yaml.org,2002:set is not allowed", 1),
        ("a: !!timestamp 2024-01-01\n", "YAML tag tag:yaml.org,2002:timestamp is not allowed", 1),
        ("# *\na: !!python/object:os.system {}\n", "is not allowed (plain data only)", 2),
        ("1: x\n", "mapping key 1 must be a string (quote it)", 1),
        ("? [a, b]\n: x\n", "must be a string", 1),
        ("~: x\n", "mapping key None must be a string", 1),
        ("", "file is empty", 1),
        ("# only a comment\n", "file is empty", 1),
    ],
)
def test_yaml_beyond_plain_data_is_refused_with_a_reason(tmp_path: Path, text: str, words: str, line: int) -> None:
    d = only(_one_bad_node(tmp_path, text)[1])
    assert d.rule == "yaml" and words in d.message and d.line == line


def test_an_anchor_that_is_never_used_is_harmless(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"nodes/worker-01.yaml": VALID.replace("kind: ", "kind: &k ")})
    assert validate(root).ok


def test_unquoted_dates_and_yes_no_are_plain_values_not_objects() -> None:
    # YAML 1.2 core schema: yes is a string, as editors, check-jsonschema and kubectl read it.
    assert documents.parse("a: 2024-01-01\nb: yes\nc: 0x1f\n") == {"a": "2024-01-01", "b": "yes", "c": 31}


@pytest.mark.parametrize("text", ["null\n", "42\n", "just text\n", "- a\n- b\n"])
def test_a_document_that_is_not_a_mapping_is_a_schema_error_on_line_one(tmp_path: Path, text: str) -> None:
    d = only(_one_bad_node(tmp_path, text)[1])
    assert (d.rule, d.line, d.column) == ("schema", 1, 1)
    assert "document must be of type object" in d.message


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    start = time.perf_counter()
    d = only(_one_bad_node(tmp_path, "\n".join(lines) + "\n")[1])
    assert time.perf_counter() - start < 2
    assert "aliases" in d.message and d.line == 2


@pytest.mark.parametrize("depth", [65, 200, 480, 900, 5000, 100_000])
def test_hostile_nesting_is_refused_without_a_crash(tmp_path: Path, depth: int) -> None:
    d = only(_one_bad_node(tmp_path, "a: " + "[" * depth + "]" * depth + "\n")[1])
    assert d.rule == "yaml" and "nesting deeper than 64 levels" in d.message


def test_block_nesting_beyond_the_limit_is_refused_with_its_line(tmp_path: Path) -> None:
    text = "".join(f"{'  ' * i}k{i}:\n" for i in range(70)) + "  " * 70 + "x\n"
    d = only(_one_bad_node(tmp_path, text)[1])
    assert "nesting deeper" in d.message and d.line == 65


def test_nesting_within_the_limit_is_loaded() -> None:
    assert documents.parse("a: " + "[" * 63 + "]" * 63) == {"a": json.loads("[" * 63 + "]" * 63)}


# --- size and encoding ----------------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_without_being_parsed(tmp_path: Path) -> None:
    text = VALID + "# " + "x" * MAX_FILE_BYTES + "\n"
    d = only(_one_bad_node(tmp_path, text)[1])
    assert d.message == f"file is larger than the limit of {MAX_FILE_BYTES} bytes"


def test_a_file_just_under_the_size_limit_is_read(tmp_path: Path) -> None:
    text = VALID + "#" * (MAX_FILE_BYTES - len(VALID) - 1) + "\n"
    assert len(text.encode()) == MAX_FILE_BYTES
    assert validate(make_repo(tmp_path, {"nodes/worker-01.yaml": text})).ok


def test_a_file_that_is_not_utf8_is_reported_at_the_bad_byte(tmp_path: Path) -> None:
    raw = VALID.replace("storage0", "stor\xe4ge0").encode("latin-1")
    d = only(_one_bad_node(tmp_path, raw)[1])
    assert (d.rule, d.line, d.column) == ("yaml", 7, 15)
    assert d.message == "file is not valid UTF-8 (byte 0xe4)"


def test_a_utf16_file_is_refused(tmp_path: Path) -> None:
    d = only(_one_bad_node(tmp_path, VALID.encode("utf-16"))[1])
    assert "not valid UTF-8" in d.message and d.line == 1


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    assert validate(make_repo(tmp_path, {"nodes/worker-01.yaml": b"\xef\xbb\xbf" + VALID.encode()})).ok


def test_crlf_line_endings_are_accepted_and_lines_still_count(tmp_path: Path) -> None:
    text = VALID.replace("mtu: 9000", "mtu: 1").replace("\n", "\r\n")
    d = only(_one_bad_node(tmp_path, text)[1])
    assert d.field == "spec.interfaces[0].mtu" and d.line == 12


def test_the_loader_raises_only_load_errors_for_garbage() -> None:
    for text in ["\x00", "\x07: x", "a: b: c", "[", "{a: 1, a: 2}", "a: @x", "%YAML 9.9\n---\na: 1"]:
        try:
            documents.parse(text)
        except LoadError as exc:
            assert exc.message
        # anything else escaping fails the test


# --- layout: symlinks, stray files, status/ --------------------------------------------------------


def test_a_symlink_to_a_file_outside_the_repo_is_refused_and_not_read(tmp_path: Path) -> None:
    secret = write(tmp_path, "outside/secret.yaml", "password: hunter2\n")
    root = make_repo(tmp_path / "repo", {"nodes/good-01.yaml": node("good-01", 7)})
    os.symlink(secret, root / "nodes" / "evil.yaml")
    result = validate(root)
    d = only(errors(result))
    assert (d.path, d.rule) == ("nodes/evil.yaml", "symlink")
    assert d.message == "symlink points outside the repository; refused"
    assert "nodes/evil.yaml" not in result.documents
    assert "hunter2" not in formats.text(result)


@pytest.mark.parametrize("where", ["nodes", "clusters", "nodes/rack-a"])
def test_a_symlinked_folder_leaving_the_repo_is_refused(tmp_path: Path, where: str) -> None:
    outside = make_repo(tmp_path / "outside", {"worker-09.yaml": node("worker-09", 9)})
    root = make_repo(tmp_path / "repo", {"reconciler.yaml": dump({"apiVersion": "x"})})
    (root / where).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, root / where)
    result = validate(root)
    assert [(d.path, d.rule) for d in errors(result) if d.rule == "symlink"] == [(where, "symlink")]
    assert not any("worker-09" in d.path for d in result.diagnostics)


def test_a_symlinked_settings_file_leaving_the_repo_is_refused(tmp_path: Path) -> None:
    outside = write(tmp_path, "elsewhere/reconciler.yaml", "x: 1\n")
    root = make_repo(tmp_path / "repo", {"nodes/worker-01.yaml": node()})
    os.symlink(outside, root / "reconciler.yaml")
    assert [(d.path, d.rule) for d in errors(validate(root))] == [("reconciler.yaml", "symlink")]


def test_a_symlink_inside_the_repo_is_followed(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"shared/worker-01.yaml": node()})
    (root / "nodes").mkdir()
    os.symlink("../shared/worker-01.yaml", root / "nodes" / "worker-01.yaml")
    result = validate(root)
    assert result.ok and "worker-01" in result.desired.nodes


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("../status/worker-01.yaml", "points into status/"),
        ("../.git/config.yaml", "points into .git/"),
        ("missing.yaml", "symlink target does not exist"),
        ("..", "a loop"),
        (".", "a loop"),
    ],
)
def test_symlinks_into_status_dot_folders_nowhere_or_loops_are_refused(tmp_path: Path, target: str, words: str) -> None:
    root = make_repo(
        tmp_path, {"status/worker-01.yaml": node(), ".git/config.yaml": node(), "nodes/good-01.yaml": node("good-01")}
    )
    os.symlink(target, root / "nodes" / "worker-01.yaml")
    result = validate(root)
    d = only(errors(result))
    assert (d.path, d.rule) == ("nodes/worker-01.yaml", "symlink") and words in d.message
    assert "good-01" in result.desired.nodes


def test_status_is_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_repo(
        tmp_path,
        {
            "nodes/worker-01.yaml": node(),
            "status/nodes/worker-01.yaml": "{{{ not yaml",
            "status/summary.yaml": b"\xff\xfe",
            "status/nodes/big.yaml": "x" * (MAX_FILE_BYTES + 10),
        },
    )
    read: list[str] = []
    original = documents.read

    def spy(path: str) -> tuple[str, object]:
        read.append(path)
        return original(path)

    monkeypatch.setattr(documents, "read", spy)
    result = validate(root)
    assert result.diagnostics == []
    assert read and not any("/status/" in p for p in read)


@pytest.mark.parametrize(
    ("rel", "shown"),
    [
        ("stray.yaml", "stray.yaml"),
        ("worker-01.yml", "worker-01.yml"),
        ("docs/node.yaml", "docs/node.yaml"),
        ("config/nodes/worker-02.yaml", "config/nodes/worker-02.yaml"),
        ("node/worker-03.yaml", "node/worker-03.yaml"),
    ],
)
def test_yaml_outside_the_known_folders_is_a_warning_that_does_not_fail(tmp_path: Path, rel: str, shown: str) -> None:
    root = make_repo(tmp_path, {"nodes/worker-01.yaml": node(), rel: "{{{ never parsed"})
    result = validate(root)
    assert result.ok
    w = only(warnings(result))
    assert (w.path, w.rule) == (shown, "layout")
    assert "outside clusters/ and nodes/" in w.message


def test_dot_folders_and_other_files_are_ignored_silently(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path,
        {
            "nodes/worker-01.yaml": node(),
            ".github/workflows/validate.yaml": "on: push\n",
            ".pre-commit-config.yaml": "repos: []\n",
            "README.md": "# config\n",
            "nodes/README.md": "notes\n",
            "nodes/.draft.yaml": "{{{",
        },
    )
    assert validate(root).diagnostics == []


def test_a_yaml_file_with_an_upper_case_suffix_in_nodes_is_an_error_that_blocks_its_object(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"nodes/worker-01.yaml": node(), "nodes/worker-02.YAML": node("worker-02", 2)})
    result = validate(root)
    e = only(errors(result))
    assert e.path == "nodes/worker-02.YAML" and "lower case" in e.message
    assert "worker-02" in result.desired.blocked["MultiNicNodeConfig"]
    assert "worker-01" in result.desired.nodes


def test_something_that_is_not_a_regular_file_is_refused_and_blocks_its_object(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"nodes/worker-01.yaml": node()})
    os.mkfifo(root / "nodes" / "pipe.yaml")  # reading it would block forever
    result = validate(root)
    e = only(errors(result))
    assert e.path == "nodes/pipe.yaml" and "not a regular file" in e.message
    assert "pipe" in result.desired.blocked["MultiNicNodeConfig"]


def test_two_settings_files_keep_the_first(tmp_path: Path) -> None:
    from test_config_support import settings

    root = make_repo(tmp_path, {"reconciler.yaml": settings(), "reconciler.yml": settings()})
    d = only(errors(validate(root)))
    assert d.path == "reconciler.yml" and "reconciler.yaml is used" in d.message


def test_deeply_nested_folders_are_not_walked_forever(tmp_path: Path) -> None:
    deep = "nodes/" + "/".join(f"d{i}" for i in range(12)) + "/worker-01.yaml"
    d = only(errors(validate(make_repo(tmp_path, {deep: node()}))))
    assert d.rule == "layout" and "nested deeper" in d.message


def test_a_path_that_is_not_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(RepoUnreadable):
        validate_repo(tmp_path / "missing")
    write(tmp_path, "file.yaml", "a: 1\n")
    with pytest.raises(RepoUnreadable):
        validate_repo(tmp_path / "file.yaml")


def test_an_empty_repo_is_valid(tmp_path: Path) -> None:
    result = validate(tmp_path)
    assert result.ok and result.files == [] and result.desired.nodes == {}


# --- hostile file names ---------------------------------------------------------------------------

HOSTILE = [
    ("space", "worker 01.yaml", "nodes/worker 01.yaml"),
    ("upper", "Worker-01.yaml", "nodes/Worker-01.yaml"),
    ("unicode", "wörker-01.yaml", "nodes/wörker-01.yaml"),
    ("newline", "worker\n01.yaml", "nodes/worker\\x0a01.yaml"),
    ("escape", "worker\x1b[2J01.yaml", "nodes/worker\\x1b[2J01.yaml"),
    ("bidi", "worker\u202e10.yaml", "nodes/worker\\u202e10.yaml"),
    ("dots", "worker..01.yaml", "nodes/worker..01.yaml"),
    ("double-suffix", "worker-01.yaml.yaml", "nodes/worker-01.yaml.yaml"),
]


@pytest.mark.parametrize(("name", "shown"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_a_hostile_file_name_is_reported_and_shown_escaped_in_every_format(
    tmp_path: Path, name: str, shown: str
) -> None:
    root = make_repo(tmp_path, {"nodes/good-01.yaml": node("good-01", 7), f"nodes/{name}": node("worker-01")})
    result = validate(root)
    d = only(errors(result))
    assert d.path == f"nodes/{name}" and d.rule == "file-name"
    for fmt, render in formats.FORMATS.items():
        out = render(result)
        out.encode("utf-8")  # never fails
        assert not any(ch in out for ch in "\x1b\u202e"), fmt
        if fmt == "text":
            assert shown in out
        if fmt == "github":
            assert f"::error file={shown.replace(':', '%3A')}," in out


def test_a_file_name_that_is_not_utf8_is_shown_as_its_bytes(tmp_path: Path) -> None:
    root = make_repo(tmp_path, {"nodes/good-01.yaml": node("good-01", 7)})
    write(root, b"nodes/w\xffrker.yaml", node())
    result = validate(root)
    d = only(errors(result))
    assert d.rule == "file-name"
    for fmt, render in formats.FORMATS.items():
        out = render(result)
        out.encode("utf-8")
        if fmt == "json":
            out = json.loads(out)["diagnostics"][0]["file"]
        if fmt == "sarif":  # a URI: the byte percent-encoded
            location = json.loads(out)["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
            assert location["artifactLocation"]["uri"] == "nodes/w%FFrker.yaml"
            continue
        assert "nodes/w\\xffrker.yaml" in out, fmt


def test_unreadable_files_are_an_error_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_repo(tmp_path, {"nodes/worker-01.yaml": node()})

    def broken(path: str) -> tuple[str, object]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(documents, "read", broken)
    d = only(errors(validate(root)))
    assert (d.path, d.rule, d.message) == ("nodes/worker-01.yaml", "io", "cannot read file: Permission denied")


def test_a_large_repo_read_by_parallel_workers_gives_the_same_result(tmp_path: Path) -> None:
    files = {f"nodes/worker-{i:03d}.yaml": node(f"worker-{i:03d}", i) for i in range(450)}
    files["nodes/worker-200.yaml"] = "{{{"
    files["clusters/pve-prod.yaml"] = cluster()
    root = make_repo(tmp_path, files)
    one, two = validate_repo(root, jobs=1), validate_repo(root, jobs=2)
    assert one.diagnostics == two.diagnostics and len(one.errors) == 1
    assert set(one.desired.nodes) == set(two.desired.nodes) and len(two.desired.nodes) == 449
