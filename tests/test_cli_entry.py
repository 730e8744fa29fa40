"""`python -m kansa` and the installed `kansa` are the same command, group by group."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXE = str(Path(sys.executable).parent / "kansa")
ROOT = Path(__file__).parent.parent


def commands(argv: list[str]) -> list[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env, cwd=ROOT).stdout
    listed = out.split("Commands:", 1)[1]
    return re.findall(r"^  (\S+)", listed, flags=re.MULTILINE)


def test_python_m_kansa_lists_the_same_commands_as_the_installed_kansa() -> None:
    installed = commands([EXE, "--help"])
    assert {"ledger", "check", "report", "demo", "serve", "auditor", "client"} <= set(installed)
    assert commands([sys.executable, "-m", "kansa", "--help"]) == installed
    assert commands([sys.executable, "-m", "kansa", "ledger", "--help"]) == commands(
        [EXE, "ledger", "--help"]
    )
