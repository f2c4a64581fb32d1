"""Pruning benchmark: the same study on the quick space with and without pruning.

    .venv/bin/python bench/bench_pruning.py [--trials 24] [--seed 0] [--pruners median none]
                                            [--data DATA] [--set KEY=VALUE ...] [--store DIR]

For each pruner runs `ckrun tune` (library call, the default config plus any --set, the quick
space, a seeded TPE sampler, no registration) into a throw-away MLflow store and Optuna study,
then prints per study: trials by state, epochs trained in total (a completed trial counts the
epochs it ran, a pruned one the epochs before it stopped), the best validation objective and
the time its trials took (summed, so a resumed study counts every trial). The last line
compares each pruned study with the unpruned one (`none`): target >= 2x fewer epochs at a best
objective within 0.02. Exits 1 when a target is missed.

--store DIR keeps the studies in DIR and resumes them: a study that already has --trials trials
is not rerun (training is deterministic, so the unpruned study need only run once while the
pruned one is varied), and one that has fewer gets the missing trials.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

from _store import throwaway_store

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EPOCH_RATIO_TARGET, OBJECTIVE_TOLERANCE = 2.0, 0.02


def epochs_trained(trial) -> int:
    """Epochs a trial actually trained: what a pruned trial reported, what a finished one ran."""
    if trial.state.name == "PRUNED":
        return max(trial.intermediate_values, default=0)
    return int(trial.user_attrs.get("epochs_run", 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pruners", nargs="+", default=["median", "none"])
    parser.add_argument("--data", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--store", default=None, help="keep (and resume) the studies in this folder")
    args = parser.parse_args()

    store = throwaway_store("ckrun-pruning-", reuse=args.store)

    import optuna

    from ckrun import console
    from ckrun.config import load_config
    from ckrun.data.loader import prepare_for_config
    from ckrun.tune import TuneOptions, run_tune

    console.set_quiet(True)
    cfg = load_config(overrides=[*args.overrides, f"seed={args.seed}"])
    data = prepare_for_config(args.data, cfg, progress=False)
    results: dict[str, tuple[int, float]] = {}
    for pruner in args.pruners:
        options = TuneOptions(
            search_space="quick",
            n_trials=args.trials,
            max_trials=args.trials,
            study_name=f"bench-{pruner}",
            storage=f"sqlite:///{store}/optuna.db",
            pruner=pruner,
            register=False,
            experiment="pruning",
            seed=args.seed,
        )
        run_tune(cfg, data, options)
        trials = optuna.load_study(study_name=options.study_name, storage=options.storage).get_trials()
        trials = [t for t in trials if t.state.is_finished()][: args.trials]  # one worker: none skipped
        epochs = sum(epochs_trained(t) for t in trials)
        best = max((t.value for t in trials if t.state.name == "COMPLETE"), default=float("nan"))
        results[pruner] = (epochs, best)
        seconds = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
        counts = Counter(t.state.name.lower() for t in trials)
        states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        per_trial = " ".join(f"{t.number}:{epochs_trained(t)}{'p' if t.state.name == 'PRUNED' else ''}" for t in trials)
        sys.stdout.write(
            f"pruner {pruner:<9} {len(trials)} trials ({states}) | epochs trained {epochs} | "
            f"best val objective {best:.4f} | trials took {seconds:.0f}s | epochs per trial {per_trial}\n"
        )
        sys.stdout.flush()

    ok = True
    if "none" in results:
        full_epochs, full_best = results["none"]
        for pruner, (epochs, best) in results.items():
            if pruner == "none":
                continue
            ratio = full_epochs / max(epochs, 1)
            meets = ratio >= EPOCH_RATIO_TARGET and best >= full_best - OBJECTIVE_TOLERANCE
            ok &= meets
            sys.stdout.write(
                f"{pruner} vs none: {ratio:.2f}x fewer epochs, best objective {best - full_best:+.4f} | "
                f"meets targets (>= {EPOCH_RATIO_TARGET:g}x, within {OBJECTIVE_TOLERANCE}): {meets}\n"
            )
    sys.stdout.write(f"store: {store}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
