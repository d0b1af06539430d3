"""Static checks run as part of the suite: ruff, mypy --strict, and the import-linter layer
contract of DESIGN.md. Each fails the suite with the tool's own output."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / cmd[0]
    program = str(exe) if exe.exists() else shutil.which(cmd[0])
    if program is None:
        pytest.fail(f"{cmd[0]} is not installed (it is in the 'test' extra)")
    return subprocess.run([program, *cmd[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff() -> None:
    result = run("ruff", "check", "unigate", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = run("mypy", "unigate")
    assert result.returncode == 0, result.stdout + result.stderr


def test_layer_contract() -> None:
    result = run("lint-imports", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_past_800_lines() -> None:
    big = [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for p in (ROOT / "unigate").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 800
    ]
    assert not big, big
