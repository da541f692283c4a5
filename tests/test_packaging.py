"""What users install: the product wheel carries no sandbox and no test-only dependency, works
alone for `reconciler validate`, and says how to get `reconciler sandbox`/`demo`; the lock files
pin (with hashes) exactly what scripts/setup.sh installed."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SANDBOX_ONLY = {"kubernetes-validate", "trustme"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(requirement: str) -> str:
    return _norm(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("multinic_reconciler-*.whl")
    return built


@pytest.fixture(scope="module")
def product_only(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the wheel and the product's dependencies, without the sandbox package."""
    env = tmp_path_factory.mktemp("product-only") / "venv"
    venv.create(env, with_pip=False)
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.check_output([str(env / "bin" / "python"), "-c", where], text=True).strip())
    # Third-party libraries come from the test environment's site-packages; its .pth files (our two
    # editable installs) are not processed from there, so neither checkout is importable.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return env / "bin" / "python"


def test_the_wheel_has_no_sandbox_module_and_no_sandbox_dependency(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert not [n for n in names if "sandbox" in n.lower()], "the product wheel ships sandbox files"
    assert any(n.startswith("reconciler/_data/schemas/") for n in names)
    runtime = {_name(line.split(":", 1)[1]) for line in meta.splitlines()
               if line.startswith("Requires-Dist:") and "extra ==" not in line}
    assert runtime and not runtime & (SANDBOX_ONLY | {"pytest", "hypothesis"})


def test_validate_runs_from_the_wheel_alone(product_only: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(product_only), "-m", "reconciler", "validate", str(ROOT / "example-repo")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    where = subprocess.check_output([str(product_only), "-c", "import reconciler; print(reconciler.__file__)"],
                                    text=True, cwd=tmp_path)
    assert str(ROOT) not in where  # the wheel's copy ran, not the checkout


@pytest.mark.parametrize("command", [["sandbox", "kube"], ["demo"]])
def test_sandbox_commands_without_the_sandbox_say_how_to_install_it(product_only: Path, tmp_path: Path,
                                                                     command: list[str]) -> None:
    done = subprocess.run([str(product_only), "-m", "reconciler", *command], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert "multinic-sandbox" in done.stderr and "pip install" in done.stderr
    assert "Traceback" not in done.stderr


def test_sandbox_commands_come_from_the_installed_sandbox() -> None:
    done = subprocess.run([sys.executable, "-m", "reconciler", "sandbox", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "kube" in done.stdout and "proxmox" in done.stdout


def _locked(lock: Path) -> dict[str, str]:
    text = lock.read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", text, flags=re.M))
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    unhashed = [b.split("==")[0] for b in blocks if "==" in b and "--hash=sha256:" not in b]
    assert not unhashed, f"{lock.name}: pins without hashes: {unhashed}"
    return {_norm(name): version for name, version in pins.items()}


def test_the_dev_lock_is_what_is_installed() -> None:
    locked = _locked(ROOT / "requirements" / "dev.txt")
    installed = {_norm(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {n: (v, installed.get(n)) for n, v in locked.items() if installed.get(n) != v}
    assert not wrong, f"locked vs installed: {wrong}"


def test_every_declared_dependency_is_locked_in_each_lock_that_needs_it() -> None:
    product = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sandbox = tomllib.loads((ROOT / "sandbox" / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in product["dependencies"]}
    test = {_name(r) for r in product["optional-dependencies"]["test"]}
    sandbox_deps = {_name(r) for r in sandbox["dependencies"]} - {"multinic-reconciler"}
    needs = {"runtime": runtime, "demo": runtime | sandbox_deps, "dev": runtime | test | sandbox_deps}
    for lock, names in needs.items():
        missing = names - set(_locked(ROOT / "requirements" / f"{lock}.txt"))
        assert not missing, f"requirements/{lock}.txt lacks {sorted(missing)} (run scripts/lock.sh)"
    assert not SANDBOX_ONLY & set(_locked(ROOT / "requirements" / "runtime.txt"))
