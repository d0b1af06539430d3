"""The command line: ``unigate check`` output and exit codes, ``serve`` refusing a broken file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from unigate.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_check_prints_line_and_column_of_a_typo(tmp_path: Path) -> None:
    cfg = tmp_path / "api.yaml"
    cfg.write_text(
        "providers:\n"
        "  - provider: openai\n"
        "    base_url: https://api.openai.com/v1\n"
        "    api: sk-secret-never-printed-123456\n"
        "    model: [gpt-4o]\n"
        "    preferences:\n"
        "      model_timeot: {default: 10}\n"
        "api_keys:\n"
        "  - api: sk-client\n"
    )
    result = CliRunner().invoke(main, ["check", str(cfg)])
    assert result.exit_code == 1
    assert f"{cfg}:7:7: providers[0].preferences.model_timeot: unknown key 'model_timeot'" in result.output
    assert "did you mean 'model_timeout'" in result.output
    assert "sk-secret-never-printed" not in result.output


def test_check_summarises_a_valid_file() -> None:
    result = CliRunner().invoke(main, ["check", str(ROOT / "examples" / "api.yaml")])
    assert result.exit_code == 0, result.output
    assert "ok — " in result.output and "client key(s)" in result.output


def test_serve_refuses_a_broken_config_before_starting(tmp_path: Path) -> None:
    cfg = tmp_path / "api.yaml"
    cfg.write_text("providers: []\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(cfg), "--port", "1"])
    assert result.exit_code == 1
    assert "providers" in result.output


def test_python_dash_m_runs_the_same_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "unigate", "check", str(ROOT / "examples" / "api.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "ok — " in out.stdout


def test_gen0_threshold_reads_its_variable() -> None:
    from unigate.app import GC_GEN0_DEFAULT, gen0_threshold

    assert gen0_threshold({}) == GC_GEN0_DEFAULT
    assert gen0_threshold({"UNIGATE_GC_GEN0": " 2500 "}) == 2500
    for bad in ("0", "-5", "many", "1e4", "²"):
        assert gen0_threshold({"UNIGATE_GC_GEN0": bad}) == GC_GEN0_DEFAULT


def test_a_server_app_freezes_its_heap_and_raises_the_gen0_threshold(tmp_path: Path) -> None:
    """In its own process: the test process's collector must not be changed."""
    config = tmp_path / "api.yaml"
    config.write_text(
        "providers:\n  - provider: p\n    base_url: http://127.0.0.1:9/v1\n    api: sk-up\n    model: [m]\n"
        "api_keys:\n  - api: sk-test-client\n"
    )
    script = (
        "import gc, sys\n"
        "from starlette.testclient import TestClient\n"
        "from unigate.app import create_app\n"
        "from unigate.config.load import load_source\n"
        "app = create_app(load_source(sys.argv[1]), env={'DISABLE_DATABASE': 'true', 'UNIGATE_GC_GEN0': '4321'},"
        " freeze_heap=True)\n"
        "before = gc.get_threshold()\n"
        "with TestClient(app):\n"
        "    print(before[0], gc.get_threshold()[0], gc.get_freeze_count() > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(config)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["700", "4321", "True"]
