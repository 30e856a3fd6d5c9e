"""`edgeseg models`: the JSON list, the table, and clear errors for a bad --size."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from edgeseg.cli.main import app
from edgeseg.models import complexity, create, list_models

runner = CliRunner()


def test_models_json_lists_every_model_with_params_and_gflops() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert list(rows) == list_models()
    assert {"fcn8s", "unet", "unet_ds", "deeplabv3", "deeplabv3plus", "lraspp_dsnet"} <= set(rows)
    with torch.device("meta"):
        params, gflops = complexity(create("lraspp_dsnet"), (512, 512))
    assert rows["lraspp_dsnet"]["params"] == params
    assert rows["lraspp_dsnet"]["gflops"] == round(gflops, 3) and rows["lraspp_dsnet"]["size"] == [512, 512]
    assert min(row["gflops"] for row in rows.values()) < 2.1
    assert rows["unet"]["params"] == 31_038_933  # the classic U-Net with BatchNorm, 21 classes: 31.04 M
    assert rows["deeplabv3plus"]["gflops"] > rows["deeplabv3"]["gflops"] > rows["lraspp_dsnet"]["gflops"]


def test_models_table_uses_the_given_size() -> None:
    result = runner.invoke(app, ["models", "--size", "64x96"])
    assert result.exit_code == 0, result.output
    assert "64×96" in result.output and "deeplabv3plus_mobilenetv2" in result.output


def test_bad_size_is_a_clear_input_error() -> None:
    for size, message in (("512", "is not HxW"), ("16x512", "at least 32"), ("axb", "is not HxW")):
        result = runner.invoke(app, ["models", "--size", size])
        assert result.exit_code != 0
        assert message in str(result.exception)
        assert result.exception.exit_code == 2


def test_usage_errors_are_one_line_with_exit_code_2(monkeypatch, capsys) -> None:
    """The entry point turns typer's usage errors (its own click) into a message and exit code 2."""
    import pytest

    from edgeseg.cli.main import main

    monkeypatch.setattr("sys.argv", ["edgeseg", "models", "--bogus"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "No such option: --bogus" in err and "Traceback" not in err
