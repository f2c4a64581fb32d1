"""Optuna's own study plots (history, importances, parallel coordinates, slices, front) as artifacts.

They go on the study's parent run under ``plots/``. A plot Optuna cannot draw for this study
(too few trials, one param, no intermediate values) is skipped with a warning, never fatal.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from ckrun import tracking
from ckrun.console import warn
from ckrun.tune.attrs import PARETO_TARGETS

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial


def _value(index: int, trial: FrozenTrial) -> float:
    return trial.values[index]


def _negated(index: int, trial: FrozenTrial) -> float:
    return -trial.values[index]


def importance_target(index: int) -> Callable[[FrozenTrial], float]:
    """The target for Optuna's importances of one objective of a (maximised) pareto study.

    Optuna's default evaluator (PED-ANOVA since Optuna 5) takes a `target` as lower-is-better,
    whatever the study's directions: given the F1 itself it ranks the params that make F1 *low*.
    The negated F1 ranks those that make it high; fANOVA's variance split is the same either way.
    """
    return partial(_negated, index)


def log_study_plots(study: Study, pareto: bool) -> list[str]:
    """Optuna's history, importance, parallel-coordinate and slice plots (matplotlib) as artifacts."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    plots: dict[str, Callable[[], Any]] = {}
    targets: list[tuple[str, int | None]] = [(t, i) for i, t in enumerate(PARETO_TARGETS)] if pareto else [("", None)]
    for name, index in targets:
        suffix = f"_{name}" if name else ""
        kw: dict[str, Any] = {"target": partial(_value, index), "target_name": name} if index is not None else {}
        plots[f"optimization_history{suffix}"] = partial(vis.plot_optimization_history, study, **kw)
        ranked = {**kw, "target": importance_target(index)} if index is not None else kw
        plots[f"param_importances{suffix}"] = partial(vis.plot_param_importances, study, **ranked)
        plots[f"parallel_coordinate{suffix}"] = partial(vis.plot_parallel_coordinate, study, **kw)
        plots[f"slice{suffix}"] = partial(vis.plot_slice, study, **kw)
    if pareto:
        plots["pareto_front"] = partial(vis.plot_pareto_front, study, target_names=list(PARETO_TARGETS))
    elif any(t.intermediate_values for t in study.get_trials(deepcopy=False)):  # none without pruning
        plots["intermediate_values"] = partial(vis.plot_intermediate_values, study)
    logged = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, make in plots.items():
            try:
                axes = make()
                fig = np.asarray(axes).flat[0].figure
                path = Path(tmp) / f"{name}.png"
                fig.savefig(path, dpi=100, bbox_inches="tight")
                plt.close(fig)
                tracking.log_figure_file(path, "plots")
                logged.append(name)
            except (ValueError, RuntimeError, ZeroDivisionError, IndexError, optuna.exceptions.OptunaError) as exc:
                warn(f"study plot {name} skipped: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
                plt.close("all")
    return logged
