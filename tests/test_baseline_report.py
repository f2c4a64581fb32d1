"""The strongest baseline beside every deep run: report table, analysis prose, `ckrun run` summary.

Runs are logged straight through `ckrun.tracking` with known test scores (no training), so
which run beats which baseline on which head is decided by construction.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ckrun import tracking
from ckrun.main_job import MainJobResult, summary
from ckrun.report import collect

DIGEST = "abc123abc123"


def _scores(emotion_acc: float, emotion_f1: float, au_f1: float, objective: float) -> dict[str, float]:
    return {
        "test_emotion_accuracy": emotion_acc,
        "test_emotion_f1": emotion_f1,
        "test_au_f1": au_f1,
        "val_emotion_f1": objective,
        "val_au_f1": objective,
        "objective": objective,
    }


def _log(name: str, kind: str, metrics: dict[str, float], params: dict[str, str]) -> str:
    with tracking.start_run(kind=kind, run_name=name, experiment="floors") as run:
        tracking.log_params({"data_digest": DIGEST, **params})
        tracking.log_metrics(metrics, step=2)
    return run.run_id


# What `ckrun baseline --model best` logs of each family it fitted (its val objective).
FAMILIES = {"baseline_objective_logreg": 0.61, "baseline_objective_hog_svm": 0.70, "baseline_objective_lbp_svm": 0.655}


def _log_experiment() -> dict[str, str]:
    """Two baselines on the data (HOG-SVM strongest on val), one stronger on *other* data, and
    three deep runs: one losing on AU macro-F1, one tying on emotion accuracy, one beating all."""
    hog = {"baseline_model": "hog-svm", "baseline_C": "0.01", "baseline_C_au": "0.1"}
    strong_but_worse_on_val, other_data = _scores(0.99, 0.99, 0.99, 0.60), _scores(0.99, 0.99, 0.99, 0.95)
    elsewhere = {"data_digest": "other"}
    return {
        "baseline-hog-svm": _log("baseline-hog-svm", "baseline", _scores(0.90, 0.89, 0.63, 0.70) | FAMILIES, hog),
        "baseline-logreg": _log(
            "baseline-logreg",
            "baseline",
            strong_but_worse_on_val | {"baseline_objective_logreg": 0.60},  # one family fitted
            {"baseline_model": "logreg"},
        ),
        "baseline-elsewhere": _log(
            "baseline-elsewhere", "baseline", other_data, {"baseline_model": "svm", **elsewhere}
        ),
        "train-loses": _log("train-loses", "train", _scores(0.95, 0.94, 0.61, 0.80), {"epochs": "40"}),
        "train-ties": _log("train-ties", "train", _scores(0.90, 0.95, 0.70, 0.78), {"epochs": "40"}),
        "train-wins": _log("train-wins", "train", _scores(0.96, 0.95, 0.70, 0.75), {"epochs": "40"}),
    }


def _rows(markdown: str, section: str) -> dict[str, dict[str, str]]:
    text = re.search(rf"^## {section}\n(.*?)(?=^## |\Z)", markdown, re.MULTILINE | re.DOTALL).group(1)  # type: ignore[union-attr]
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, [c.strip() for c in line.strip("|").split("|")], strict=True)) for line in lines[2:]]
    return {r["run"]: r for r in rows}


def test_strongest_baseline_is_the_best_val_objective_on_the_same_data(mlflow_store: Path) -> None:
    ids = _log_experiment()
    table = collect.collect_runs("floors").table
    assert collect.strongest_baseline(table, DIGEST)["run_id"] == ids["baseline-hog-svm"]
    assert collect.strongest_baseline(table, "other")["run_id"] == ids["baseline-elsewhere"]
    verdicts = collect.baseline_verdicts(table)
    assert set(verdicts) == {ids["train-loses"], ids["train-ties"], ids["train-wins"]}
    assert {str(b["run_id"]) for b, _ in verdicts.values()} == {ids["baseline-hog-svm"]}
    assert [run for run in ("train-loses", "train-ties", "train-wins") if verdicts[ids[run]][1].beats] == ["train-wins"]


def test_report_flags_each_deep_run_that_does_not_beat_the_strongest_baseline(mlflow_store: Path) -> None:
    from ckrun.report import generate_report

    _log_experiment()
    md = generate_report(experiment="floors").with_name("report.md").read_text()
    rows = _rows(md, "Run comparison")
    column = "vs strongest baseline (test)"
    assert rows["train-loses"][column] == "**no**: AU F1 0.610 ≤ 0.630"
    assert rows["train-ties"][column] == "**no**: emotion acc 0.900 ≤ 0.900"
    assert rows["train-wins"][column] == "beats"
    assert rows["baseline-hog-svm"][column] == "strongest baseline"
    assert rows["baseline-logreg"][column] == "–"

    analysis = re.search(r"^### Against the strongest baseline\n(.*?)(?=^### )", md, re.MULTILINE | re.DOTALL)
    assert analysis, "the analysis has no baseline subsection"
    text = analysis.group(1)
    assert (
        "The strongest baseline is **baseline-hog-svm** (HOG-SVM, C 0.01 for emotion and C 0.1 for AUs, chosen on "
        "validation; val objective 0.700; each family's: logistic-regression 0.610, HOG-SVM 0.700, LBP-SVM 0.655)"
    ) in text
    from ckrun.report.analysis import _family_objectives

    assert _family_objectives(pd.Series({"baseline_objective_logreg": 0.6, "objective": 0.6})) == ""  # one family
    assert "**2 of 3 trained runs do not beat it**" in text
    assert "- **train-loses** does not beat the HOG-SVM baseline on AU macro-F1: 0.610 vs 0.630." in text
    assert "- **train-ties** does not beat the HOG-SVM baseline on emotion accuracy: 0.900 vs 0.900." in text
    assert "1 of 3 trained runs beat it on every head: train-wins." in text
    judgement = md.split("### Ultimate judgement", 1)[1]
    assert "the best run does not beat the HOG-SVM baseline on AU macro-F1: 0.610 vs 0.630." in judgement


def test_run_summary_sets_the_baseline_beside_each_deep_run_and_flags_a_loser(mlflow_store: Path) -> None:
    baseline = _scores(0.90, 0.89, 0.63, 0.70)
    result = MainJobResult("b", "t", _scores(0.95, 0.94, 0.61, 0.80), baseline, baseline_model="hog-svm")
    result.trial_label, result.trial_metrics = "best trial (3)", _scores(0.96, 0.95, 0.70, 0.75)
    text = summary(result)
    header = next(line for line in text.splitlines() if "hog-svm" in line)
    assert header.split() == ["baseline", "hog-svm", "default", "best", "trial", "(3)"]
    au_row = next(line for line in text.splitlines() if line.startswith("test_au_f1 "))
    assert au_row.split() == ["test_au_f1", "0.630", "0.610", "0.700"]
    assert "FLAG: the default run does not beat the HOG-SVM baseline on AU macro-F1: 0.610 vs 0.630." in text
    assert "\nbest trial (3) beats the HOG-SVM baseline on every head" in text
    assert "fusion" not in text  # an unfused default run says nothing of fusion
    fused = _scores(0.95, 0.94, 0.66, 0.80) | {"fusion_weight_chosen": 0.3, "unfused_test_emotion_accuracy": 0.93,
                                                "unfused_test_au_f1": 0.64}  # fmt: skip
    text = summary(MainJobResult("b", "t", fused, baseline, baseline_model="hog-svm"))
    assert (
        "the default run averages its own linear baseline in at weight 0.3 (fusion=baseline); the network alone: "
        "test_emotion_accuracy 0.930, test_au_f1 0.640"
    ) in text
    alone = fused | {"fusion_weight_chosen": 0.0}
    text = summary(MainJobResult("b", "t", alone, baseline, baseline_model="hog-svm"))
    assert "chose weight 0 on val: it is the network alone" in text and "averages" not in text
    # fusion_heads=separate: the heads' weights are told apart, and one of them above 0 is a fusion.
    heads = fused | {"fusion_weight_chosen": 0.0, "fusion_au_weight_chosen": 0.2}
    text = summary(MainJobResult("b", "t", heads, baseline, baseline_model="hog-svm"))
    assert "averages its own linear baseline in at weight 0 (AU head 0.2) (fusion=baseline)" in text
    same = fused | {"fusion_au_weight_chosen": 0.3}
    assert "at weight 0.3 (fusion=baseline)" in summary(MainJobResult("b", "t", same, baseline, baseline_model="x"))
