"""What `ckrun tune` is asked to do (TuneOptions) and what it leaves behind (StudyResult).

Plain data shared by the CLI, the worker and the finalisation; nothing here touches Optuna
or MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


@dataclass
class TuneOptions:
    """`ckrun tune` options (see the CLI help); the heartbeat settings are for RDB storages."""

    search_space: str | Path = "cpu"
    n_trials: int = 10
    max_trials: int | None = None
    timeout: float | None = None
    storage: str | None = None
    study_name: str = "ckrun-study"
    objective: str = "mean"
    sampler: str = "tpe"
    pruner: str = "median"
    register_name: str = "ckplus-resnet"
    register: bool = True
    retrain: bool = False
    finalize_only: bool = False
    experiment: str | None = None
    seed: int | None = None  # sampler seed  [default: the config's seed]
    heartbeat_interval: int = 60
    grace_period: int = 180
    max_retry: int = 2
    verbose: bool = False  # per-epoch lines of every trial

    @property
    def pareto(self) -> bool:
        return self.objective == "pareto"


@dataclass
class StudyResult:
    """What `run_tune` leaves behind: the study, its best trial and the registered model."""

    study_name: str
    storage: str  # redacted label
    parent_run_id: str | None
    counts: dict[str, int]
    ran: list[int]
    best_trial: FrozenTrial | None = None
    best_run_id: str | None = None
    model_uri: str | None = None  # models:/<name>@champion
    model_version: str | None = None
    pareto_front: list[FrozenTrial] = field(default_factory=list)
    test_metrics: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        total = sum(v for k, v in self.counts.items() if k != "SKIPPED")
        states = ", ".join(f"{n} {s.lower()}" for s, n in self.counts.items() if n)
        lines = [
            f"study {self.study_name} ({self.storage}): {total} trials ({states}); this worker ran {len(self.ran)}"
        ]
        best = self.best_trial
        if best is None:
            lines.append("no completed trial yet")
        else:
            value = ", ".join(f"{v:.4f}" for v in best.values)
            lines.append(f"best trial {best.number}: value {value}  run {self.best_run_id}")
            lines.append("  " + "  ".join(f"{k}={_fmt(v)}" for k, v in best.params.items()))
        if self.pareto_front:
            lines.append(f"pareto front: trials {', '.join(str(t.number) for t in self.pareto_front)}")
        if self.model_uri:
            lines.append(f"model: {self.model_uri} (version {self.model_version})")
        shown = [k for k in ("test_emotion_accuracy", "test_emotion_f1", "test_au_f1") if k in self.test_metrics]
        if shown:
            lines.append("  " + "  ".join(f"{k} {self.test_metrics[k]:.3f}" for k in shown))
        if self.parent_run_id:
            lines.append(f"study run: {self.parent_run_id}")
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
