"""Report sections about runs: comparison table, result analysis, best run, hyperparameters,
per-group scores. Each function takes collected data and returns document blocks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ckrun import tracking
from ckrun.baselines.verdict import Verdict
from ckrun.data.labels import EMOTION_CLASSES
from ckrun.figures.confusion import plot_confusion
from ckrun.figures.curves import plot_overlaid_curves
from ckrun.figures.runs import plot_hyperparameter_effects, plot_importances, plot_run_comparison
from ckrun.figures.scores import plot_groups, plot_per_au, plot_per_class
from ckrun.metrics import RULE_TEXT
from ckrun.report import analysis, collect
from ckrun.report.analysis import fmt
from ckrun.report.document import Block, Bullets, Details, Figure, FigureRow, Heading, Paragraph, Table
from ckrun.report.groups import ATTRIBUTE_NAMES, GroupScores
from ckrun.report.uncertainty import fmt_interval

TOP_RUNS = 5  # runs whose learning curves are overlaid


def objective_label(kind: str) -> str:
    return {
        "mean": "val objective (mean emotion & AU macro-F1)",
        "emotion": "val objective (emotion macro-F1)",
        "au": "val objective (AU macro-F1)",
    }.get(kind, "val objective")


# %% Comparison table


def _epochs_cell(row: Mapping[str, Any]) -> str:
    """Epochs asked for, e.g. ``40 (9)`` with the kept epoch; ``21 of 40 (9)`` when the fit stopped early."""
    epochs, best, ran = row.get("epochs", math.nan), row.get("best_epoch", math.nan), row.get("epochs_run", math.nan)
    if _nan(epochs):
        return "–"
    cell = f"{int(ran)} of {int(epochs)}" if not _nan(ran) and 0 < ran < epochs else str(int(epochs))
    return f"{cell} ({int(best)})" if not _nan(best) and best > 0 else cell


def _nan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def _list_cell(value: Any) -> str:
    return "[" + ", ".join(map(str, value)) + "]" if isinstance(value, tuple | list) else "–"


def _num_cell(value: Any) -> str:
    return "–" if _nan(value) else f"{float(value):g}"


COMPARISON_HEADERS = (
    "run",
    "kind",
    "l2",
    "learning rate",
    "epochs (best)",
    "filters",
    "blocks",
    "train emotion acc",
    "val emotion acc",
    "val emotion F1",
    "val AU F1",
    "test emotion acc",
    "test emotion F1",
    "test AU F1",
    "objective",
    "fit diagnosis",
    "vs strongest baseline (test)",
)


def _baseline_cell(row: Mapping[str, Any], verdicts: Mapping[str, tuple[pd.Series, Verdict]]) -> str:
    """'beats' / '**no**: AU F1 0.61 ≤ 0.63' for a deep run; 'strongest' for a baseline that is one."""
    run_id = str(row.get("run_id", ""))
    if run_id in verdicts:
        return verdicts[run_id][1].cell()
    if row.get("kind") == "baseline" and any(str(b["run_id"]) == run_id for b, _ in verdicts.values()):
        return "strongest baseline"
    return "–"


def comparison_frame(table: pd.DataFrame, majority: Mapping[str, Any] | None) -> pd.DataFrame:
    """Display rows: trained runs by objective, then the baseline(s), then the majority class.

    Every train run, trial and cv parent is set against the strongest baseline on its data
    (best val objective; for a cv parent, one cross-validated on the same folds), head by head
    on test; a run that does not beat it says where.
    """
    trained = table.loc[table["kind"] != "baseline"]
    references = table.loc[table["kind"] == "baseline"]
    rows = [r for _, r in trained.iterrows()] + [r for _, r in references.iterrows()]
    verdicts = collect.baseline_verdicts(table)
    records = []
    for row in [*rows, *([majority] if majority else [])]:
        test_mark = "*" if row.get("test_source") == "evaluate run" else ""
        records.append(
            [
                str(row.get("run", "")),
                str(row.get("kind", "")),
                _num_cell(row.get("l2")),
                _num_cell(row.get("learning_rate")),
                _epochs_cell(row),
                _list_cell(row.get("filters")),
                _list_cell(row.get("blocks")),
                fmt(row.get("train_emotion_accuracy")),
                fmt(row.get("val_emotion_accuracy")),
                fmt(row.get("val_emotion_f1")),
                fmt(row.get("val_au_f1")),
                fmt_interval(row, "test_emotion_accuracy") + test_mark,
                fmt_interval(row, "test_emotion_f1") + test_mark,
                fmt_interval(row, "test_au_f1") + test_mark,
                fmt(row.get("objective")),
                str(row.get("fit_diagnosis", "") or "–"),
                _baseline_cell(row, verdicts),
            ]
        )
    return pd.DataFrame(records, columns=list(COMPARISON_HEADERS))


def comparison_blocks(
    runs: collect.RunSet, majority: Mapping[str, Any] | None, fig_dir: Path, obj_kind: str
) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Run comparison")]
    if runs.table.empty:
        return [*blocks, Paragraph(f"Experiment '{runs.experiment}' holds no finished runs to compare yet.")]
    caption = (
        f"Sorted by the {analysis.OBJECTIVE_WORDS.get(obj_kind, 'validation objective')} (best first); the linear "
        "baselines and the majority-class rule follow as references. train = clean training images (no augmentation); "
        "epochs (best) = epochs configured (epoch restored). Test scores: value [subject-level bootstrap interval]; "
        "cross-validation: mean ± SD over folds. * test scores from a later `ckrun evaluate` run. "
        "vs strongest baseline: each train run and trial against the baseline with the best val objective on the same "
        "data and split, on test emotion accuracy, emotion macro-F1 and AU macro-F1 (beats = higher on every one); "
        "a cv row against a baseline cross-validated on the same folds (`ckrun baseline --cv K`), on the fold means."
    )
    blocks.append(Table(comparison_frame(runs.table, majority), caption))
    path = plot_run_comparison(runs.table, fig_dir / "run_comparison.png", objective_label=objective_label(obj_kind))
    blocks.append(Figure(path, "Validation objective per run, coloured by fit diagnosis"))
    return blocks


# %% Result analysis


def analysis_blocks(
    runs: collect.RunSet,
    diagnoses: Mapping[str, collect.RunDiagnosis | None],
    best: pd.Series | None,
    majority: Mapping[str, Any] | None,
    obj_kind: str,
) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Result analysis")]
    if runs.table.empty:
        return [*blocks, Paragraph("No runs yet: train one with `ckrun train` or `ckrun run`.")]
    blocks.append(Paragraph(analysis.verdict_summary(runs.table)))
    groups = analysis.fit_groups(runs.table, diagnoses)
    for verdict, sentences in groups.items():
        if sentences:
            blocks += [Heading(3, verdict.capitalize()), Bullets(sentences)]
    lead, flagged, tail = analysis.baseline_text(runs.table, collect.baseline_verdicts(runs.table))
    if lead:
        blocks += [Heading(3, "Against the strongest baseline"), *[Paragraph(t) for t in lead]]
        blocks += [Bullets(flagged)] if flagged else []
        blocks += [Paragraph(t) for t in tail]
    if best is not None:
        baseline = collect.strongest_baseline(runs.table, best.get("data_digest"))
        blocks.append(Heading(3, "Ultimate judgement"))
        blocks += [
            Paragraph(t)
            for t in analysis.best_run_text(
                best, runs.table, objective_kind=obj_kind, baseline=baseline, majority=majority
            )
        ]
    blocks.append(Details("How the fit diagnosis is decided", RULE_TEXT))
    return blocks


# %% Best run


def _confusion_figure(run_id: str, run: str, split: str, fig_dir: Path) -> Figure | None:
    data = collect.confusion(run_id, split)
    if not data:
        return None
    counts = np.asarray(data["counts"])
    classes = data.get("classes") or list(EMOTION_CLASSES)
    path = plot_confusion(
        counts, classes, fig_dir / f"confusion_{split}.png", title=f"{run}: emotion on {split} (n={int(counts.sum())})"
    )
    return Figure(path, f"Confusion matrix on {split}: counts and share of each true class")


def per_au_frame(per_au: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "action unit": per_au["name"],
            "precision": [fmt(v) for v in per_au["precision"]],
            "recall": [fmt(v) for v in per_au["recall"]],
            "F1": [fmt(v) for v in per_au["f1"]],
            "support": [str(int(v)) for v in per_au["support"]],
            "threshold": [fmt(v, 2) for v in per_au["threshold"]],
            "ROC AUC": [fmt(v) for v in per_au.get("roc_auc", pd.Series([np.nan] * len(per_au)))],
        }
    )


def _test_else_val(read: Any, run_id: str) -> tuple[str, pd.DataFrame | None]:
    """The test-split table when the run has a test split, else the validation one."""
    table = read(run_id, "test")
    return ("test", table) if table is not None else ("val", read(run_id, "val"))


def best_run_blocks(best: pd.Series, table: pd.DataFrame, fig_dir: Path) -> list[Block]:
    run_id, name = best["run_id"], str(best["run"])
    blocks: list[Block] = [Heading(2, f"Best run: {name}")]
    if isinstance(best.get("description"), str):
        blocks.append(Paragraph(best["description"]))
    blocks.append(Paragraph(f"MLflow run id `{run_id}`."))
    blocks += [Paragraph(t) for t in analysis.metric_reading(best)]

    blocks.append(Heading(3, "Emotion"))
    row = [_confusion_figure(run_id, name, s, fig_dir) for s in ("val", "test")]
    if any(row):
        blocks.append(FigureRow([f for f in row if f]))
    split, per_class = _test_else_val(collect.per_class, run_id)
    if per_class is not None and not per_class.empty:
        frame = pd.DataFrame(
            {
                "emotion class": per_class["class"],
                **{
                    label: [fmt(v) for v in per_class[m]]
                    for m, label in (("precision", "precision"), ("recall", "recall"), ("f1", "F1"))
                },
                "support": [str(int(v)) for v in per_class["support"]],
            }
        )
        blocks.append(Table(frame, f"Per-class scores on {split}."))
        blocks.append(
            Figure(
                plot_per_class(per_class, fig_dir / "per_class.png", split=split, run=name),
                f"Per-class scores on {split}",
            )
        )

    blocks.append(Heading(3, "Action units"))
    au_split, per_au = _test_else_val(collect.per_au, run_id)
    if per_au is None or per_au.empty:
        blocks.append(Paragraph("This run has no AU outputs (no AU had enough positives in training)."))
    else:
        blocks.append(Table(per_au_frame(per_au), f"Per-AU scores on {au_split}; thresholds tuned on val."))
        worst = analysis.worst_aus_text(per_au)
        if worst:
            blocks.append(Paragraph(worst))
        path = plot_per_au(per_au, fig_dir / "per_au.png", split=au_split, run=name)
        blocks.append(Figure(path, f"F1, precision and recall per action unit on {au_split}"))

    blocks.append(Heading(3, "Learning curves"))
    curves = tracking.copy_artifact(run_id, "plots/learning_curves.png", fig_dir / "best_learning_curves.png")
    if curves:
        blocks.append(Figure(curves, f"{name}: learning curves (dotted line: restored best epoch)"))
    overlay = overlaid_curves(table, fig_dir)
    if overlay:
        blocks.append(overlay)
    return blocks


def overlaid_curves(table: pd.DataFrame, fig_dir: Path) -> Figure | None:
    trained = table.loc[table["kind"].isin(collect.TRAINED_KINDS) & table["objective"].notna()]
    histories = {}
    for _, row in trained.head(TOP_RUNS).iterrows():
        hist = collect.history(row["run_id"])
        if hist is not None and "epoch" in hist.columns:
            histories[str(row["run"])] = hist
    if not histories:
        return None
    path = plot_overlaid_curves(histories, fig_dir / "top_runs_curves.png")
    return Figure(path, f"Top {len(histories)} runs by objective: validation curves overlaid")


# %% Hyperparameters


def hyperparameter_blocks(
    table: pd.DataFrame,
    best: pd.Series | None,
    fig_dir: Path,
    obj_kind: str,
    importances: Mapping[str, float] | None,
    study: str | None,
    study_note: str | None,
) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Hyperparameter effects")]
    path = plot_hyperparameter_effects(
        table,
        fig_dir / "hyperparameters.png",
        objective_label=objective_label(obj_kind),
        best_run_id=None if best is None else best["run_id"],
    )
    if path is None:
        blocks.append(Paragraph("No trained run has a validation objective yet."))
    else:
        blocks.append(Figure(path, "Validation objective against l2 (log axis), epochs, filters and blocks"))
        blocks.append(Bullets(analysis.hyperparameter_text(table)))
    if importances:
        fig = plot_importances(importances, fig_dir / "optuna_importance.png", study=str(study))
        top = max(importances, key=lambda k: importances[k])
        blocks += [
            Figure(fig, f"Optuna parameter importance for study '{study}'"),
            Paragraph(f"In study '{study}', **{top}** explains the largest share of the objective's variance."),
        ]
    if study_note:
        blocks.append(Paragraph(study_note))
    return blocks


# %% Per-group


def group_blocks(scores: GroupScores, run: str, fig_dir: Path) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Per-group metrics"),
        Paragraph(
            f"The best run's logged model ({run}) predicted the {scores.split} split again; scores per group use "
            f"its own thresholds. Overall: emotion accuracy {fmt(scores.overall['emotion_accuracy'])}, "
            f"AU macro-F1 {fmt(scores.overall['au_f1'])}."
        ),
    ]
    named = {ATTRIBUTE_NAMES.get(k, k): v for k, v in scores.tables.items()}
    for attribute, table in named.items():
        frame = pd.DataFrame(
            {
                attribute: table["group"],
                "subjects": [str(int(v)) for v in table["subjects"]],
                "images": [str(int(v)) for v in table["images"]],
                "emotion accuracy": [fmt(v) for v in table["emotion_accuracy"]],
                "emotion macro-F1": [fmt(v) for v in table["emotion_f1"]],
                "AU macro-F1": [fmt(v) for v in table["au_f1"]],
            }
        )
        blocks.append(Table(frame, f"Test scores by {attribute}."))
    blocks.append(Bullets(analysis.group_text(named)))
    blocks.append(Figure(plot_groups(named, fig_dir / "per_group.png", run=run), "Test scores per demographic group"))
    return blocks
