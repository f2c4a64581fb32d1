"""The generated "Result analysis": the seed report's judgement, written from the numbers.

The seed report called Run 3 overfitting because train emotion accuracy (0.875) beat
validation (0.79), Run 2 underfitting at 0.44 on train, and Runs 1 and 4 balanced. Here
each run's logged diagnosis (verdict, the rule that fired, its numbers) becomes the same
kind of sentence, and the best run is named with the reasons it is best, so the text can
never drift from what MLflow holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ckrun.baselines import FAMILY_LABELS, family_label, objective_metric
from ckrun.baselines.verdict import Verdict, compare
from ckrun.report import collect
from ckrun.report.collect import RunDiagnosis

VERDICT_ORDER = ("overfitting", "underfitting", "balanced")
VERDICT_MEANING = {
    "overfitting": "fits the training images much better than it generalises to validation",
    "underfitting": "does not fit even the images it was trained on",
    "balanced": "fits training and validation alike",
}
OBJECTIVE_WORDS = {
    "mean": "mean of validation emotion macro-F1 and AU macro-F1",
    "emotion": "validation emotion macro-F1",
    "au": "validation AU macro-F1",
}


def fmt(value: Any, digits: int = 3) -> str:
    """A number for prose and tables: 3 decimals, '–' for missing."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(number) else f"{number:.{digits}f}"


def _pair(numbers: Mapping[str, float], key: str, label: str) -> str | None:
    train, val = numbers.get(f"train_{key}"), numbers.get(f"val_{key}")
    if train is None or val is None:
        return None
    return f"{label} {fmt(train)} on clean training images vs {fmt(val)} on validation"


def run_sentence(run: pd.Series, diagnosis: RunDiagnosis | None) -> str:
    """Why one run got its verdict, with the numbers that decided it."""
    verdict = run["fit_diagnosis"] or (diagnosis.verdict if diagnosis else "")
    numbers = dict(diagnosis.numbers) if diagnosis else {}
    for key in ("train_emotion_accuracy", "val_emotion_accuracy", "val_emotion_f1", "val_au_f1"):
        if key not in numbers and not math.isnan(run.get(key, math.nan)):
            numbers[key] = float(run[key])
    evidence = [
        p
        for p in (
            _pair(numbers, "emotion_accuracy", "emotion accuracy"),
            _pair(numbers, "au_f1", "AU macro-F1"),
        )
        if p
    ]
    reasons = diagnosis.reasons if diagnosis and diagnosis.reasons else []
    text = f"**{run['run']}** ({run['kind']}) {VERDICT_MEANING.get(verdict, 'has no fit diagnosis')}"
    if evidence:
        text += ": " + "; ".join(evidence)
    if reasons:
        text += ". Rule: " + "; ".join(reasons)
    return text + "."


def fit_groups(table: pd.DataFrame, diagnoses: Mapping[str, RunDiagnosis | None]) -> dict[str, list[str]]:
    """Sentences per verdict (overfitting, underfitting, balanced), runs in table order."""
    groups: dict[str, list[str]] = {v: [] for v in VERDICT_ORDER}
    for _, run in table.iterrows():
        verdict = run["fit_diagnosis"] if run["fit_diagnosis"] in VERDICT_ORDER else ""
        if verdict:
            groups[verdict].append(run_sentence(run, diagnoses.get(run["run_id"])))
    return groups


def verdict_summary(table: pd.DataFrame) -> str:
    """'2 overfit (A, B), 1 underfits (C), 1 balanced (D).'"""
    parts = []
    for verdict in VERDICT_ORDER:
        names = table.loc[table["fit_diagnosis"] == verdict, "run"].tolist()
        if names:
            parts.append(f"{len(names)} {verdict} ({', '.join(map(str, names))})")
    return ("Of the compared runs, " + ", ".join(parts) + ".") if parts else "No run carries a fit diagnosis."


def best_run_text(
    best: pd.Series,
    table: pd.DataFrame,
    *,
    objective_kind: str,
    baseline: pd.Series | None,
    majority: Mapping[str, Any] | None,
) -> list[str]:
    """The ultimate judgement: which run is best, by how much, and whether to trust it."""
    objective = OBJECTIVE_WORDS.get(objective_kind, "validation objective")
    trained = collect.ranked_runs(table)
    others = trained.loc[trained["run_id"] != best["run_id"]]
    lines = [
        f"**Best run: {best['run']}** ({best['kind']}), with the highest validation objective "
        f"({objective}) of {fmt(best['objective'])}: validation emotion macro-F1 {fmt(best['val_emotion_f1'])}, "
        f"AU macro-F1 {fmt(best['val_au_f1'])}, emotion accuracy {fmt(best['val_emotion_accuracy'])}."
    ]
    if not others.empty:
        runner = others.iloc[0]
        lines.append(
            f"It leads the next run, {runner['run']} ({fmt(runner['objective'])}), by "
            f"{fmt(best['objective'] - runner['objective'])} out of {len(trained)} trained runs."
        )
    resnet = _has_widths(best.get("backbone"))
    hp = [
        f"{label} {value}"
        for label, value in (
            ("backbone", best.get("backbone") or ""),
            ("l2", _num(best.get("l2"))),
            ("learning rate", _num(best.get("learning_rate"))),
            ("epochs", _num(best.get("epochs"))),
            ("filters", _lst(best.get("filters")) if resnet else ""),
            ("blocks", _lst(best.get("blocks")) if resnet else ""),
        )
        if value
    ]
    if hp:
        best_epoch = _num(best.get("best_epoch"))
        tail = f" (best epoch {best_epoch}, restored)" if best_epoch else ""
        lines.append("Its hyperparameters: " + ", ".join(hp) + tail + ".")
    references = []
    if baseline is not None:
        references.append(
            f"the strongest baseline ({family_label(baseline.get('baseline_model'))}) reaches "
            f"{fmt(baseline['val_emotion_f1'])} emotion macro-F1 and {fmt(baseline['val_au_f1'])} AU macro-F1 "
            "on validation"
        )
    if majority and "val_emotion_accuracy" in majority:
        references.append(
            f"always predicting the majority class scores {fmt(majority['val_emotion_accuracy'])} accuracy "
            f"and {fmt(majority.get('val_emotion_f1'))} macro-F1 on validation"
        )
    if references:
        margin = ""
        if baseline is not None and not math.isnan(baseline.get("objective", math.nan)):
            delta = best["objective"] - baseline["objective"]
            margin = (
                f" The best run is {fmt(abs(delta))} {'above' if delta >= 0 else 'below'} the baseline's objective."
            )
        lines.append("For reference, " + "; ".join(references) + "." + margin)
    verdict = best["fit_diagnosis"]
    if verdict == "balanced":
        lines.append("Its fit is balanced, so its validation score is a fair guide to new subjects.")
    elif verdict:
        balanced = trained.loc[trained["fit_diagnosis"] == "balanced"]
        alt = (
            f" The best balanced run is {balanced.iloc[0]['run']} ({fmt(balanced.iloc[0]['objective'])})."
            if not balanced.empty
            else " No trained run is balanced yet."
        )
        advice = {
            "overfitting": "its training scores overstate what it does on new subjects (more regularisation, "
            "augmentation or fewer epochs would help)",
            "underfitting": "it has not yet fitted its own training images (more epochs, capacity or a "
            "higher learning rate, less regularisation would help)",
        }.get(verdict, "read its score with care")
        lines.append(f"Caution: it is diagnosed as **{verdict}**: {advice}.{alt}")
    if baseline is not None:
        verdict = compare(best, baseline)
        if verdict.judged:
            lines.append(verdict.sentence("On test, the best run", family_label(baseline.get("baseline_model"))))
    if not math.isnan(best.get("test_emotion_accuracy", math.nan)):
        lines.append(
            f"On the held-out test subjects it scores emotion accuracy {fmt(best['test_emotion_accuracy'])}, "
            f"emotion macro-F1 {fmt(best['test_emotion_f1'])} and AU macro-F1 {fmt(best['test_au_f1'])}."
        )
    return lines


def _names(runs: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(runs[:limit])
    return shown + (f" and {len(runs) - limit} more" if len(runs) > limit else "")


def _family_objectives(baseline: pd.Series) -> str:
    """'; each family's: logistic-regression 0.629, ..., LBP-SVM 0.636' when `best` fitted several.

    Which features read the faces best (edges, texture or pixels) is itself a finding about a
    dataset; a run that fitted one family has nothing to set beside it.
    """
    scores = [
        f"{label} {fmt(value)}"
        for family, label in FAMILY_LABELS.items()
        if isinstance(value := baseline.get(objective_metric(family)), float) and math.isfinite(value)
    ]
    return f"; each family's: {', '.join(scores)}" if len(scores) > 1 else ""


def baseline_text(
    table: pd.DataFrame, verdicts: Mapping[str, tuple[pd.Series, Verdict]]
) -> tuple[list[str], list[str], list[str]]:
    """The strongest baseline in words, a sentence per trained run that does not beat it, who does.

    Returns (lead, flagged, tail): 'train-1 does not beat the HOG-SVM baseline on AU macro-F1:
    0.610 vs 0.630.' Verdicts are on test, head by head; a reviewer reads these before any
    tuned number.
    """
    lead: list[str] = []
    baselines = {str(b["run_id"]): b for b, _ in verdicts.values()}
    for baseline in baselines.values():
        cs = [
            f"C {c} for {head}"
            for head, c in (("emotion", baseline.get("baseline_C")), ("AUs", baseline.get("baseline_C_au")))
            if isinstance(c, str) and c not in ("", "–")
        ]
        lead.append(
            f"The strongest baseline{'' if len(baselines) == 1 else ' on its data'} is **{baseline['run']}** "
            f"({family_label(baseline.get('baseline_model'))}{', ' + ' and '.join(cs) if cs else ''}, chosen on "
            f"validation; val objective {fmt(baseline['objective'])}{_family_objectives(baseline)}): on test, "
            "emotion accuracy "
            f"{fmt(baseline.get('test_emotion_accuracy'))}, emotion macro-F1 {fmt(baseline.get('test_emotion_f1'))}, "
            f"AU macro-F1 {fmt(baseline.get('test_au_f1'))}."
        )
    name = dict(zip(table["run_id"].astype(str), table["run"].astype(str), strict=False))
    flagged, winning, unjudged = [], [], []
    for run_id, (baseline, verdict) in verdicts.items():
        run = name.get(run_id, run_id)
        if not verdict.judged:
            unjudged.append(run)
        elif verdict.beats:
            winning.append(run)
        else:
            flagged.append(verdict.sentence(f"**{run}**", family_label(baseline.get("baseline_model"))))
    total = len(verdicts)
    if flagged:
        lead.append(f"**{len(flagged)} of {total} trained runs do not beat it**:")
    tail = []
    if winning:
        tail.append(f"{len(winning)} of {total} trained runs beat it on every head: {_names(winning)}.")
    if unjudged:
        tail.append(f"Not judged (no test scores on a shared head): {_names(unjudged)}.")
    return lead, flagged, tail


def metric_reading(best: pd.Series) -> list[str]:
    """The seed's 'Accuracy & F1' paragraphs: what the test numbers mean in words."""
    lines = []
    acc, f1 = best.get("test_emotion_accuracy", math.nan), best.get("test_emotion_f1", math.nan)
    if not math.isnan(acc):
        lines.append(
            f"**Emotion.** On test images the predicted emotion is right {acc:.0%} of the time (accuracy "
            f"{fmt(acc)}); the macro-F1 of {fmt(f1)} averages the three classes equally, so a model that "
            "neglects a rare class cannot hide behind the frequent one."
        )
    p = best.get("test_au_precision_weighted", math.nan)
    r = best.get("test_au_recall_weighted", math.nan)
    auf1 = best.get("test_au_f1_weighted", math.nan)
    if not math.isnan(p):
        lines.append(
            f"**Action units.** When the model marks an AU present it is right {p:.0%} of the time "
            f"(support-weighted precision {fmt(p)}); it finds {r:.0%} of the AUs that are present "
            f"(weighted recall {fmt(r)}); weighted F1 {fmt(auf1)}, macro-F1 {fmt(best.get('test_au_f1'))}."
        )
        if p - r > 0.15:
            lines.append(
                "Precision well above recall: the model is cautious and misses AUs rather than inventing them."
            )
        elif r - p > 0.15:
            lines.append(
                "Recall well above precision: the model over-reports AUs; higher thresholds would trade recall back."
            )
    return lines


def worst_aus_text(per_au: pd.DataFrame, n: int = 3) -> str | None:
    """The AUs the best run detects worst (lowest F1 among AUs present in the split)."""
    present = per_au.loc[per_au["support"] > 0].sort_values(["f1", "support"], ascending=[True, False])
    if present.empty:
        return None
    worst = present.head(n)
    items = [f"{r['name']} (F1 {fmt(r['f1'])}, {int(r['support'])} positives)" for _, r in worst.iterrows()]
    best = present.iloc[-1]
    return (
        f"Detected worst: {'; '.join(items)}. Detected best: {best['name']} (F1 {fmt(best['f1'])}). "
        "Rare AUs have few positives to learn from and their F1 moves a lot with one image."
    )


def _has_widths(backbone: object) -> bool:
    """Whether a run's filters/blocks params describe its network: the ResNet's do; the
    pretrained network's widths are fixed by its weights, and its params carry the preset's."""
    return backbone != "fer_xception"


def hyperparameter_text(table: pd.DataFrame) -> list[str]:
    """Per hyperparameter with at least two values: mean objective per value, best value first."""
    runs = table.loc[table["objective"].notna() & table["kind"].isin(("train", "trial", "cv"))]
    lines = []
    for key, label in (("l2", "l2"), ("learning_rate", "learning rate"), ("epochs", "epochs")):
        lines += _effect_line(runs, runs[key].map(_num), label)
    lines += _effect_line(runs, runs["backbone"].fillna(""), "backbone")
    resnets = runs.loc[runs["backbone"].map(_has_widths)]
    for key in ("filters", "blocks"):
        lines += _effect_line(resnets, resnets[key].map(_lst), key)
    if not lines:
        lines.append("All compared runs share their hyperparameters, so no effect can be read from them yet.")
    return lines


def _effect_line(runs: pd.DataFrame, values: pd.Series, label: str) -> list[str]:
    values = values.fillna("")
    if values.nunique() < 2:
        return []
    means = runs["objective"].groupby(values).agg(["mean", "count"]).sort_values("mean", ascending=False)
    parts = [
        f"{v} → {fmt(row['mean'])} ({int(row['count'])} run{'s' if row['count'] > 1 else ''})"
        for v, row in means.iterrows()
    ]
    return [f"**{label}**: mean objective " + ", ".join(parts) + "."]


def group_text(tables: Mapping[str, pd.DataFrame], min_subjects: int = 3) -> list[str]:
    """Largest gap per attribute, with a warning when groups are too small to conclude."""
    lines = []
    for attribute, table in tables.items():
        known = table.loc[(table["group"] != "unknown") & table["emotion_accuracy"].notna()]
        if len(known) < 2:
            only = known.iloc[0]["group"] if len(known) else "no group"
            lines.append(f"**{attribute}**: the test split holds only {only}; no comparison is possible.")
            continue
        hi, lo = known.loc[known["emotion_accuracy"].idxmax()], known.loc[known["emotion_accuracy"].idxmin()]
        small = known.loc[known["subjects"] < min_subjects, "group"].tolist()
        caveat = (
            f" Groups with fewer than {min_subjects} test subjects ({', '.join(map(str, small))}) "
            "are too small to conclude from."
            if small
            else ""
        )
        lines.append(
            f"**{attribute}**: emotion accuracy ranges from {fmt(lo['emotion_accuracy'])} ({lo['group']}) to "
            f"{fmt(hi['emotion_accuracy'])} ({hi['group']}), a gap of "
            f"{fmt(hi['emotion_accuracy'] - lo['emotion_accuracy'])}.{caveat}"
        )
    return lines


def _num(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    if math.isnan(number):
        return ""
    return str(int(number)) if number.is_integer() and abs(number) >= 1 else f"{number:g}"


def _lst(value: Any) -> str:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        return ""
    return "[" + ", ".join(str(v) for v in value) + "]"
