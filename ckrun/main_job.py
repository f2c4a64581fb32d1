"""`ckrun run`: the whole default experiment, from data to report.

Synthetic CK+ (or DATA) → dataset description → the strongest tuned linear baseline →
the default run (the FER2013-pretrained network, fine-tuned) → a short Optuna study on the
cpu space (centred on the default recipe) with the champion registered → the report. The
summary sets the baseline beside each deep run and flags one that does not beat it. Under
`mlflow run -e main` the run that MLflow created becomes the parent of every stage.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckrun import tracking
from ckrun.baselines import family_label
from ckrun.baselines.verdict import compare
from ckrun.config import TrainConfig
from ckrun.console import echo, warn

if TYPE_CHECKING:
    from ckrun.train import TrainResult


@dataclass
class MainJobResult:
    baseline_run_id: str
    train_run_id: str
    train_metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    study_summary: str = ""
    champion_uri: str | None = None
    report_path: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    baseline_model: str = ""  # the family `--model best` kept
    trial_label: str = ""  # the study's best trial, set beside the default run and the baseline
    trial_metrics: dict[str, float] = field(default_factory=dict)


def _stage(title: str) -> float:
    echo(f"\n=== {title}")
    return time.perf_counter()


def run_main(
    cfg: TrainConfig,
    data: Path | str | None = None,
    *,
    experiment: str | None = None,
    n_trials: int = 1,
    study_name: str = "ckrun-cpu",
    storage: str | None = None,
    search_space: str = "cpu",
    register_name: str = "ckplus-resnet",
    report: bool = True,
) -> MainJobResult:
    from ckrun.baseline import run_baseline
    from ckrun.data.loader import prepare_for_config
    from ckrun.data.pipeline import FaceCache
    from ckrun.train import train

    if n_trials > 0:  # the study's options fail now, not after the baseline and the default run
        from ckrun.tune import TuneOptions, check_resumable, check_space, load_search_space, resolve_storage

        # The trials optimise the default run's objective: the champion is the higher of their
        # logged `objective`s, which compare only when both are the same score.
        options = TuneOptions(search_space=search_space, n_trials=n_trials, study_name=study_name,
                              storage=storage, experiment=experiment, register=False,
                              objective=cfg.objective)  # fmt: skip
        space = load_search_space(search_space)
        check_space(space, cfg)
        check_resumable(options, resolve_storage(storage), space, cfg)
    tracking.check_store(experiment)
    if report:  # a report folder it may not write into: said now, not after every stage has run
        from ckrun import outdir
        from ckrun.report.build import default_out

        outdir.written_before(default_out(experiment))
    seconds: dict[str, float] = {}
    start = _stage("data")
    prepared = prepare_for_config(data, cfg)
    echo(f"{len(prepared.manifest)} labelled images of {prepared.manifest['subject'].nunique()} subjects "
         f"from {prepared.source} (digest {prepared.digest})")  # fmt: skip
    seconds["data"] = time.perf_counter() - start
    cache = FaceCache(cfg.cache)

    with tracking.parent_for_mlflow_run(run_name="ckrun-run"):
        start = _stage("baseline: linear models on pixels, HOG and LBP, C and family chosen on val")
        base = run_baseline(cfg, prepared, experiment=experiment, face_cache=cache, model="best")
        seconds["baseline"] = time.perf_counter() - start

        start = _stage(f"train: the default two-headed network ({cfg.backbone})")
        trained = train(cfg, prepared, experiment=experiment, face_cache=cache)
        seconds["train"] = time.perf_counter() - start

        result = MainJobResult(
            base.run_id, trained.run_id, trained.metrics, base.metrics, seconds=seconds, baseline_model=base.model
        )
        if n_trials > 0:
            from ckrun.tune import run_tune

            start = _stage(f"tune: {n_trials} Optuna trial{'s' * (n_trials != 1)} on the {search_space} space")
            study = run_tune(cfg, prepared, options)
            result.study_summary = study.summary()
            if study.best_trial is not None and study.best_run_id:
                result.trial_label = f"best trial ({study.best_trial.number})"
                result.trial_metrics = dict(tracking.get_run(study.best_run_id).data.metrics)
            result.champion_uri = register_champion(trained, study, register_name)
            seconds["tune"] = time.perf_counter() - start

    if report:
        from ckrun.report import generate_report

        start = _stage("report")
        result.report_path = generate_report(
            experiment=experiment, study=study_name if n_trials > 0 else None, storage=storage, data=data
        )
        seconds["report"] = time.perf_counter() - start
    echo(summary(result))
    return result


def register_champion(trained: TrainResult, study: Any, name: str) -> str | None:
    """Register the better of the default run and the study's best trial as ``@champion``.

    A one- or two-trial study may well lose to the default recipe it is centred on; the champion
    is whichever run logged the higher validation `objective` (for a Pareto study, that of the
    front member the study calls best), so the registry never regresses. A candidate that
    logged no model cannot be registered; the next one is, and the user is told.
    """
    candidates: list[tuple[float, str, str, dict[str, Any]]] = [
        (_finite(trained.metrics.get("objective")), trained.run_id, "the default run", {})
    ]
    best = study.best_trial
    if best is not None and study.best_run_id:
        logged = tracking.get_run(study.best_run_id).data.metrics.get("objective")
        trial_tags = {"ckrun.study_name": study.study_name, "ckrun.trial_number": best.number}
        label = f"trial {best.number} of {study.study_name}"
        candidates.append((_finite(logged), study.best_run_id, label, trial_tags))
    candidates.sort(key=lambda c: c[0], reverse=True)
    for value, run_id, label, tags in candidates:
        source = tracking.run_model_uri(run_id)
        if source is None:
            warn(f"{label} (val objective {value:.3f}) logged no model (log_model=false?): not registered")
            continue
        version = tracking.register_model(source, name, alias="champion")
        tracking.tag_model_version(
            name, version, {"ckrun.source_run_id": run_id, "ckrun.val_objective": f"{value:.4f}", **tags}
        )
        others = ", ".join(f"{lbl} {v:.3f}" for v, _, lbl, _ in candidates if lbl != label)
        echo(f"champion: {label} (val objective {value:.3f}{'; ' + others if others else ''}) "
             f"-> models:/{name}@champion (version {version})")  # fmt: skip
        return f"models:/{name}@champion"
    return None


def _finite(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(float(value)) else float("-inf")


def summary(result: MainJobResult) -> str:
    """The closing table: the baseline beside each deep run, and a flag where one does not beat it."""
    from ckrun.fusion import fusion_weight_text

    def fmt(metrics: dict[str, float], key: str) -> str:
        value = metrics.get(key)
        return f"{value:.3f}" if value is not None else "n/a"

    label = family_label(result.baseline_model)
    columns = [(f"baseline {result.baseline_model or ''}".strip(), result.baseline_metrics)]
    columns.append(("default", result.train_metrics))
    deep = [("the default run", result.train_metrics)]
    if result.trial_metrics:
        columns.append((result.trial_label, result.trial_metrics))
        deep.append((result.trial_label, result.trial_metrics))
    width = max(12, *(len(name) + 2 for name, _ in columns))
    lines = ["", "=== summary", "", f"{'':24s}" + "".join(f"{name:>{width}s}" for name, _ in columns)]
    for key in ("test_emotion_accuracy", "test_emotion_f1", "test_au_f1", "objective", "majority_emotion_accuracy"):
        lines.append(f"{key:24s}" + "".join(f"{fmt(metrics, key):>{width}s}" for _, metrics in columns))
    lines.append("")
    weight = result.train_metrics.get("fusion_weight_chosen")
    if weight is not None and max(weight, result.train_metrics.get("fusion_au_weight_chosen", weight)) == 0:
        lines.append("the default run's fusion (fusion=baseline) chose weight 0 on val: it is the network alone")
    elif weight is not None:
        lines.append(
            f"the default run averages its own linear baseline in at weight {fusion_weight_text(result.train_metrics)} "
            "(fusion=baseline); "
            f"the network alone: test_emotion_accuracy {fmt(result.train_metrics, 'unfused_test_emotion_accuracy')}, "
            f"test_au_f1 {fmt(result.train_metrics, 'unfused_test_au_f1')}"
        )
    for name, metrics in deep:
        verdict = compare(metrics, result.baseline_metrics)
        flag = "" if verdict.beats or not verdict.judged else "FLAG: "
        lines.append(flag + verdict.sentence(name, label))
    lines += ["", f"baseline run: {result.baseline_run_id}", f"train run:    {result.train_run_id}"]
    if result.study_summary:
        lines += ["", result.study_summary]
    if result.champion_uri:
        lines.append(f"champion: {result.champion_uri}  (ckrun predict {result.champion_uri} IMAGE...)")
    if result.report_path:
        lines.append(f"report: {result.report_path}")
    lines.append("stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in result.seconds.items()))
    lines.append(f"MLflow UI: ckrun ui   (or: mlflow ui --backend-store-uri {tracking.configure()})")
    return "\n".join(lines)
