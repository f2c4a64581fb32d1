"""The command line: fast help, one-line errors, data commands end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from ckrun.cli import cli

COMMANDS = [
    [],
    ["data"],
    ["data", "synth"],
    ["data", "import"],
    ["data", "describe"],
    ["train"],
    ["tune"],
    ["baseline"],
    ["evaluate"],
    ["predict"],
    ["report"],
    ["compare"],
    ["explain"],
    ["ui"],
    ["run"],
    ["schema"],
]


def test_help_never_imports_tensorflow_mlflow_or_optuna() -> None:
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from ckrun.cli import cli\n"
        f"for args in {COMMANDS!r}:\n"
        "    result = CliRunner().invoke(cli, [*args, '--help'])\n"
        "    assert result.exit_code == 0, (args, result.output)\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'mlflow', 'optuna') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"--help imported {out.stdout.strip()}"
    assert time.perf_counter() - start < 20  # generous: a TensorFlow import alone takes longer here


def _options(command: click.Command, name: str, parent: click.Context | None = None):
    """Every option of `command` and its subcommands, with the context its help is rendered in."""
    ctx = click.Context(command, info_name=name, parent=parent, **command.context_settings)
    for param in command.params:
        if isinstance(param, click.Option):
            yield ctx, param
    for sub_name, sub in getattr(command, "commands", {}).items():
        yield from _options(sub, sub_name, ctx)


def test_every_option_shows_its_default_in_help() -> None:
    """An option with a default value says it in --help, as that value (flags: the side that is on)."""
    checked = []
    for ctx, option in _options(cli, "ckrun"):
        default = option.default
        if default is None or option.multiple or (option.is_flag and not option.secondary_opts) or callable(default):
            continue  # no default value to show (optional), repeatable, or an on/off switch that is off
        if option.is_flag:
            shown = (option.opts if default else option.secondary_opts)[0].lstrip("-")
        else:
            shown = str(default)
        record = option.get_help_record(ctx)
        assert record is not None, (ctx.command_path, option.name)
        assert f"[default: {shown}" in record[1], (ctx.command_path, option.name, record[1])
        checked.append(f"{ctx.command_path} {option.name}")
    assert {"ckrun tune search_space", "ckrun tune n_trials", "ckrun tune register", "ckrun ui port"} <= set(checked)
    assert len(checked) >= 25, checked


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["data", "import", "/nonexistent/ckplus"], "/nonexistent/ckplus"),
        (["train", "--set", "l2=-1"], "l2"),
        (["train", "--set", "nonsense=1"], "nonsense"),
        (["train", "--set", "noequals"], "noequals"),
        (["train", "--config", "/nonexistent.yaml"], "/nonexistent.yaml"),
    ],
)
def test_bad_input_gives_one_line_error(args: list[str], needle: str, mlflow_store: Path) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]


def test_invalid_option_value_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["data", "synth", "out", "--subjects", "0"])
    assert result.exit_code == 2 and "--subjects" in result.output


def test_predict_names_a_missing_image(mlflow_store: Path) -> None:
    result = CliRunner().invoke(cli, ["predict", "runs:/abc/model", "missing.png"])
    assert result.exit_code == 2 and "missing.png" in result.output


def test_schema_lists_every_config_key() -> None:
    from ckrun.config import TrainConfig

    schema = json.loads(CliRunner().invoke(cli, ["schema"]).output)
    assert set(schema["properties"]) == set(TrainConfig.model_fields)


def test_data_import_and_describe_on_synthetic_ckplus(tiny_ckplus: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    result = CliRunner().invoke(cli, ["data", "import", str(tiny_ckplus), "--out", str(manifest)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(manifest)
    assert len(frame) > 0 and {"path", "subject", "emotion", "emotion_num"} <= set(frame.columns)
    headline = re.search(r"imported (\d+) images \(ckplus\): (\d+) sequences, (\d+) subjects\n", result.output)
    assert headline, result.output
    sequences = frame.groupby(["subject", "sequence"]).ngroups
    assert [int(n) for n in headline.groups()] == [len(frame), sequences, frame["subject"].nunique()]

    out = tmp_path / "describe"
    result = CliRunner().invoke(cli, ["data", "describe", str(manifest), "--out", str(out)])
    assert result.exit_code == 0, result.output
    numbers = json.loads((out / "numbers.json").read_text())
    counts = frame["emotion"].value_counts().to_dict()
    assert numbers["emotion_counts"] == counts
    assert (out / "summary.md").is_file() and (out / "au_correlation.png").is_file()
    # The synthetic set reproduces CK+'s known co-occurrences.
    top = {(p["au_a"], p["au_b"]) for p in numbers["strongest_pairs"]["positive"]}
    assert {("AU1", "AU2"), ("AU6", "AU12")} <= top
    corr = numbers["au_correlation"]
    assert corr["AU23"]["AU24"] > 0 and corr["AU2"]["AU27"] > 0
    assert "AU1 inner brow raiser" in (out / "summary.md").read_text()
