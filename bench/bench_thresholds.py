"""Which rule for the per-AU decision thresholds generalises from val to test? Replayed on logged runs.

    .venv/bin/python bench/bench_thresholds.py STORE [STORE ...] [--name-like 'default-%']

A run tunes each AU's threshold on val (ckrun.metrics.tune_thresholds): only with at least
`threshold_min_positives` val positives (else 0.5), and pulled towards 0.5 by
`threshold_shrinkage`. On ~200 val images a rare AU has a handful of positives, so the free
optimum is noisy; how much to trust it is a bias-variance choice that depends on how many
positives real val splits hold, which is why the replay exists. Rules replayed:

- `run`: the run's own rule (`--min-positives`, `--shrinkage`), reproduces the logged test AU F1;
- `shrink=S`: the same minimum, pulled towards 0.5 by S (0 = free optimum, 1 = always 0.5);
- `min=M`: the run's shrinkage, tuned from M val positives;
- `shared`: one threshold for all AUs chosen on val by macro-F1, then each AU's own optimum
  pulled towards it (instead of towards 0.5) by the run's shrinkage, and AUs with too few val
  positives take it. Partial pooling: what AUs have in common (the loss's class balancing moves
  every AU's scores the same way) is estimated from all of them.

Every input is what a run already logged (`predictions/{val,test}.csv`, the probabilities the
run scored), so nothing is trained.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHRINKAGES = (0.0, 0.25, 0.75, 1.0)
MINIMA = (5, 20)


def shared_thresholds(
    targets: np.ndarray, probs: np.ndarray, aus: list[str], min_positives: int, shrinkage: float
) -> np.ndarray:
    """The `shared` rule: per-AU optima pulled towards one val-chosen threshold for every AU."""
    from ckrun.metrics import THRESHOLD_GRID, au_scores, tune_thresholds

    macro = [au_scores(targets, probs, np.full(len(aus), t), aus)[0]["au_f1"] for t in THRESHOLD_GRID]
    common = float(THRESHOLD_GRID[int(np.argmax(np.round(macro, 9)))])
    free = tune_thresholds(targets, probs, min_positives=min_positives, shrinkage=0.0)
    tuned = np.array([targets[targets[:, j] >= 0, j].sum() >= min_positives for j in range(len(aus))])
    return np.where(tuned, common + (1.0 - shrinkage) * (free - common), common).round(4)


def val_draws(subjects: np.ndarray, fraction: float, draws: int) -> list[np.ndarray]:
    """Row masks of val: all of it, or `draws` random subject subsets holding `fraction` of its subjects."""
    if fraction >= 1.0:
        return [np.ones(len(subjects), bool)]
    unique = np.unique(subjects)
    keep = max(1, round(fraction * len(unique)))
    return [np.isin(subjects, np.random.default_rng(d).choice(unique, keep, replace=False)) for d in range(draws)]


def replay(run_id: str, min_positives: int, shrinkage: float, fraction: float, draws: int) -> dict[str, float] | None:
    """Test AU macro-F1 under each rule (and weighted-F1 under the run's), None without predictions.

    With `fraction` < 1 the thresholds are tuned on subject subsets of val (the mean over the
    draws is reported): what the rules do when val holds fewer positives per AU, as real CK+'s do.
    """
    from ckrun.metrics import au_scores, tune_thresholds
    from ckrun.report import collect

    val, test = collect.predictions(run_id, "val"), collect.predictions(run_id, "test")
    if val is None or test is None or not val.aus:
        return None

    def macro(thresholds: np.ndarray) -> float:
        return au_scores(test.au_targets, test.au_probs, thresholds, test.aus)[0]["au_f1"]

    results: list[dict[str, float]] = []
    for rows in val_draws(val.subjects, fraction, draws):
        targets, probs = val.au_targets[rows], val.au_probs[rows]

        def rule(m: int, s: float, targets: np.ndarray = targets, probs: np.ndarray = probs) -> np.ndarray:
            return tune_thresholds(targets, probs, min_positives=m, shrinkage=s)

        own = rule(min_positives, shrinkage)
        out = {
            "run_rule": macro(own),
            "weighted": au_scores(test.au_targets, test.au_probs, own, test.aus)[0]["au_f1_weighted"],
            "val_positives": float(np.median((targets == 1).sum(axis=0))),
        }
        out |= {f"shrink={s}": macro(rule(min_positives, s)) for s in SHRINKAGES}
        out |= {f"min={m}": macro(rule(m, shrinkage)) for m in MINIMA}
        out["shared"] = macro(shared_thresholds(targets, probs, val.aus, min_positives, shrinkage))
        results.append(out)
    return {key: float(np.mean([r[key] for r in results])) for key in results[0]}


def main() -> None:
    from _store import add_replay_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_replay_arguments(parser)
    parser.add_argument(
        "--val-subjects", type=float, default=1.0, help="tune on this share of val's subjects (fewer positives)"
    )
    parser.add_argument("--draws", type=int, default=10, help="random subject subsets per run with --val-subjects")
    args = parser.parse_args()

    from _store import replayed_rows

    from ckrun.markdown import markdown_table

    rows = replayed_rows(
        args.stores,
        args.name_like,
        lambda run_id: replay(run_id, args.min_positives, args.shrinkage, args.val_subjects, args.draws),
    )
    table = pd.DataFrame(rows).sort_values("run")
    rules = [f"shrink={s}" for s in SHRINKAGES] + [f"min={m}" for m in MINIMA] + ["shared"]
    print(markdown_table(table[["run", "logged", "val_positives", "run_rule", *rules]], index=False, floatfmt=".3f"))
    print(
        f"\n{len(table)} runs; median val positives per AU {table['val_positives'].median():.1f}. "
        f"Test AU macro-F1 under the run's rule (min={args.min_positives}, shrink={args.shrinkage}): "
        f"{table['run_rule'].mean():.4f}. Each rule minus it (mean ± SD, better/worse runs):"
    )
    for name in rules:
        delta = table[name] - table["run_rule"]
        print(
            f"- {name}: {delta.mean():+.4f} ± {delta.std(ddof=1) if len(delta) > 1 else 0.0:.4f} "
            f"({(delta > 1e-9).sum()}/{(delta < -1e-9).sum()})"
        )


if __name__ == "__main__":
    main()
