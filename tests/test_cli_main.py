"""The application shell: help output for flags, and how errors end a run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeseg.cli.main import COMMANDS, app

runner = CliRunner()


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS)])
def test_help_lists_flags_without_a_value_type(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "--help" in result.output
    assert "<bool>" not in result.output


def test_help_still_shows_the_type_of_options_that_take_values() -> None:
    result = runner.invoke(app, ["quantize", "--help"], env={"COLUMNS": "160"})
    assert "--force" in result.output and "--per-tensor" in result.output
    assert "<int>" in result.output and "<path>" in result.output


def _run_cli(args: list[str], **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **env}
    return subprocess.run(
        [sys.executable, "-m", "edgeseg", *args], capture_output=True, text=True, timeout=120, env=environ
    )


def test_input_error_exits_2_in_one_line_and_with_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "missing.onnx"
    plain = _run_cli(["info", str(missing)])
    assert plain.returncode == 2
    assert plain.stderr.strip().count("\n") == 0 and "missing.onnx" in plain.stderr
    traced = _run_cli(["info", str(missing)], EDGESEG_TRACEBACK="1")
    assert traced.returncode == 2
    assert "Traceback (most recent call last)" in traced.stderr and "InputError" in traced.stderr
