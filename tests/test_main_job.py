"""`ckrun run` end to end at tiny size: baseline, train, the default one-trial study, champion, report."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from report_markdown import section, subsection, table_rows

from ckrun import tracking
from ckrun.cli import cli

pytestmark = pytest.mark.slow


def test_main_job_runs_every_stage_and_registers_the_better_model(mlflow_store: Path, tiny_ckplus: Path) -> None:
    space = mlflow_store / "space.yaml"  # the default cpu space trains 30-50 epochs a trial: too long here
    space.write_text("params:\n  l2: {low: 1.0e-5, high: 1.0e-1, log: true}\n")
    args = ["run", "--data", str(tiny_ckplus), "--experiment", "main", "--search-space", str(space)]  # one trial
    for override in ("preset=tiny", "epochs=2", "min_au_count=3", "threshold_min_positives=3"):
        args += ["--set", override]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output

    runs = tracking.search_runs("main")
    kinds = runs["tags.ckrun.kind"].value_counts().to_dict()
    assert kinds == {"baseline": 1, "train": 1, "study": 1, "trial": 1}
    assert set(runs["status"]) == {"FINISHED"}

    # The champion is whichever of the default run and the best trial validates better.
    trained = runs[runs["tags.ckrun.kind"].isin(["train", "trial"])]
    champion = tracking.alias_run_id("ckplus-resnet")  # on a tie (tiny runs can tie) either run is right
    assert trained.set_index("run_id").loc[champion, "metrics.objective"] == trained["metrics.objective"].max()

    report = mlflow_store / "reports" / "main" / "report.html"
    assert report.is_file() and "report: reports/main/report.html" in result.output
    _assert_the_report_says_what_the_runs_say(report.with_name("report.md").read_text(), runs)
    for line in ("test_emotion_f1", "champion:", "models:/ckplus-resnet@champion"):
        assert line in result.output


COMPARED_METRICS = {
    "val emotion F1": "val_emotion_f1",
    "val AU F1": "val_au_f1",
    "test emotion acc": "test_emotion_accuracy",
    "test AU F1": "test_au_f1",
    "objective": "objective",
}


def _assert_the_report_says_what_the_runs_say(markdown: str, runs: pd.DataFrame) -> None:
    """Each compared run's row holds its MLflow numbers and verdict; the best run named is the best by val objective."""
    rows = {r["run"]: r for r in table_rows(section(markdown, "Run comparison"))}
    compared = runs[runs["tags.ckrun.kind"].isin(["baseline", "train", "trial"])]
    assert set(compared["tags.mlflow.runName"]) <= set(rows)
    analysis = section(markdown, "Result analysis")
    for _, run in compared.iterrows():
        row = rows[run["tags.mlflow.runName"]]
        assert row["kind"] == run["tags.ckrun.kind"]
        for header, key in COMPARED_METRICS.items():
            shown = f"{run[f'metrics.{key}']:.3f}"
            if header.startswith("test ") and f"metrics.{key}_ci_low" in run and pd.notna(run[f"metrics.{key}_ci_low"]):
                low, high = run[f"metrics.{key}_ci_low"], run[f"metrics.{key}_ci_high"]
                shown += f" [{low:.2f}, {high:.2f}]"  # test scores carry their subject-level interval
            assert row[header] == shown, (row["run"], header)
        verdict = run["tags.fit_diagnosis"]
        assert row["fit diagnosis"] == verdict
        assert f"**{row['run']}**" in subsection(analysis, verdict.capitalize())
    trained = compared[compared["tags.ckrun.kind"].isin(["train", "trial"])]
    named = re.search(r"\*\*Best run: ([^*]+)\*\*", subsection(analysis, "Ultimate judgement"))
    assert named, subsection(analysis, "Ultimate judgement")
    name = named.group(1)
    by_name = trained.set_index("tags.mlflow.runName")["metrics.objective"]
    assert by_name[name] == by_name.max()  # the best by val objective (tiny runs can tie: either is right)
    assert f"## Best run: {name}\n" in markdown
