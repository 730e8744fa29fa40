"""The packages depend one way: ledger <- contract <- dialer_core, compliance <- console,
datasette_plugins, notebooks, kansa (docs/architecture.md). Nothing imports upwards, not even
inside a function, and importing the dialling core loads nothing of the compliance engine."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGES = (
    "ledger",
    "contract",
    "dialer_core",
    "compliance",
    "console",
    "datasette_plugins",
    "notebooks",
    "kansa",
)
BELOW = {"ledger", "contract", "dialer_core", "compliance"}
MAY_IMPORT = {
    "ledger": set(),
    "contract": {"ledger"},
    "dialer_core": {"ledger", "contract"},
    "compliance": {"ledger", "contract"},
    "console": BELOW,
    "datasette_plugins": BELOW,
    "notebooks": BELOW,
    "kansa": BELOW | {"console", "datasette_plugins", "notebooks"},
}
# Files that must stand alone on purpose: the auditor's walk-through trusts no Kansa code.
ALONE = {"notebooks/verify_ledger.py"}


def imported_packages(path: Path) -> set[str]:
    """Every Kansa package a module imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_goes_against_the_flow(package: str) -> None:
    wrong = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        allowed = set() if relative in ALONE else MAY_IMPORT[package] | {package}
        extra = imported_packages(path) - allowed
        if extra:
            wrong[relative] = sorted(extra)
    assert wrong == {}


def loaded_by(package: str) -> list[str]:
    """The Kansa packages in sys.modules after importing every module of `package`."""
    script = (
        "import importlib, json, pkgutil, sys\n"
        f"root = importlib.import_module({package!r})\n"
        f"for info in pkgutil.walk_packages(root.__path__, {package + '.'!r}):\n"
        "    importlib.import_module(info.name)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(PACKAGES)!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    return list(json.loads(out.stdout))


@pytest.mark.parametrize("package", ["ledger", "contract", "dialer_core", "compliance"])
def test_importing_a_lower_package_loads_nothing_above_it(package: str) -> None:
    assert set(loaded_by(package)) <= MAY_IMPORT[package] | {package}


def test_import_dialer_core_loads_no_compliance_module() -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import dialer_core"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    loaded = [line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line]
    assert "dialer_core" in loaded and "ledger" in loaded
    assert [m for m in loaded if m.split(".")[0] == "compliance"] == []


def test_the_ledger_verifier_does_not_import_the_writer() -> None:
    """ledger.verify depends on the read side only (reader, keys, leaf...), never on store.py."""
    seen: set[str] = set()
    todo = ["verify"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((ROOT / "ledger" / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                todo.extend(node.module.split(".")[:1] if node.module else [a.name for a in node.names])
    assert "store" not in seen and "reader" in seen
