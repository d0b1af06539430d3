"""``docs/providers.md`` is exactly what ``scripts/providers_table.py`` renders from the matrix."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "providers_table.py"
DOC = ROOT / "docs" / "providers.md"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("providers_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_providers_doc_is_current() -> None:
    rendered = load_script().render()
    assert DOC.read_text(encoding="utf-8") == rendered, (
        "docs/providers.md is out of date: run `uv run python scripts/providers_table.py`"
    )


def test_check_mode_agrees() -> None:
    assert load_script().main(["--check"]) == 0
