"""Where the files shipped beside the code live: schemas, CRDs and the example repo.

In a source checkout (editable install, tests) they are the top-level folders of the repo; in an
installed wheel they are copied under ``reconciler/_data`` (see ``pyproject.toml``). One copy each
in Git either way.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent


def _locate(installed: str, checkout: str) -> Path:
    inside = _PACKAGE / "_data" / installed
    if inside.is_dir():
        return inside
    return _CHECKOUT / checkout


def schemas_dir() -> Path:
    return _locate("schemas", "schemas")


def crds_dir() -> Path:
    return _locate("crds", "charts/multinic-reconciler/crds")


def example_repo_dir() -> Path:
    return _locate("example-repo", "example-repo")
