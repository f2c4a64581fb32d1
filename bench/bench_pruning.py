"""Pruning benchmark: the same study on the quick space with and without pruning.

    .venv/bin/python bench/bench_pruning.py [--trials 24] [--seed 0] [--pruners median none]
                                            [--data DATA] [--set KEY=VALUE ...] [--store DIR]

For each pruner runs `ckrun tune` (library call, the default config plus any --set, the quick
space, a seeded TPE sampler, no registration) into a throw-away MLflow store and Optuna study,
then prints per study: trials by state, epochs trained in total (a completed trial counts the
epochs it ran, a pruned one the epochs before it stopped; a failed trial counts as failed, not
as a trial that trained 0 epochs), the best validation objective and the time its trials took
(summed, so a resumed study counts every trial). The last line compares each pruned study with
the unpruned one (`none`): target >= 2x fewer epochs at a best objective within 0.02. Exits 1
when a target is missed, when a compared study has failed trials, or when the unpruned reference
has no completed trial; --pruners without `none` and a pruner is refused (exit 2) before any
training.

--store DIR keeps the studies in DIR and resumes them: a study that already has --trials trials
is not rerun (training is deterministic, so the unpruned study need only run once while the
pruned one is varied), and one that has fewer gets the missing trials. A study's name carries
the hash of everything its trials depend on (the resolved config, so the seed and every --set;
the data digest; the search space; the sampler; the pruner and its effective settings, warm-up
included), so a stored study made under other settings is never resumed or compared: a new one
is started.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import Counter
from typing import Any

import numpy as np
from _store import throwaway_store

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EPOCH_RATIO_TARGET, OBJECTIVE_TOLERANCE = 2.0, 0.02


def epochs_trained(trial) -> int:
    """Epochs a trial actually trained: what a pruned trial reported, what a finished one ran."""
    if trial.state.name == "PRUNED":
        return max(trial.intermediate_values, default=0)
    return int(trial.user_attrs["epochs_run"])


def trial_cell(trial) -> str:
    """``12`` epochs run, ``3p`` pruned after 3, ``failed``."""
    if trial.state.name == "FAIL":
        return "failed"
    return f"{epochs_trained(trial)}{'p' if trial.state.name == 'PRUNED' else ''}"


def pruner_settings(pruner: Any) -> dict[str, Any]:
    """The pruner's class and scalar settings, read from the object `ckrun tune` builds."""
    scalars = {k: v for k, v in sorted(vars(pruner).items()) if isinstance(v, bool | int | float | str | None)}
    return {"class": type(pruner).__name__, **scalars}


def study_identity(cfg: Any, data: Any, space: Any, pruner: str, seed: int) -> dict[str, Any]:
    """Everything a study's trials depend on; its hash is part of the study name."""
    from ckrun.tune.sampling import make_pruner

    return {
        "config": cfg.params(),
        "data_digest": data.digest,
        # what the trials' suggestions depend on; the warm-up is the pruner's (in its settings)
        "search_space": space.model_dump(mode="json", exclude={"description", "warmup_epochs"}),
        "sampler": "tpe",
        "sampler_seed": seed,
        "pruner": pruner,
        "pruner_settings": pruner_settings(make_pruner(pruner, space, space.max_epochs(cfg))),
    }


def identity_key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pruners", nargs="+", default=["median", "none"])
    parser.add_argument("--data", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--store", default=None, help="keep (and resume) the studies in this folder")
    args = parser.parse_args()
    if "none" not in args.pruners or len(set(args.pruners)) < 2:
        # decided before hours of training: without the unpruned reference nothing can be judged
        parser.error("--pruners needs `none` (the unpruned reference) and at least one pruner to compare with it")

    store = throwaway_store("ckrun-pruning-", reuse=args.store)

    import optuna

    from ckrun import console
    from ckrun.config import load_config
    from ckrun.data.loader import prepare_for_config
    from ckrun.tune import SKIPPED_ATTR, TuneOptions, load_search_space, run_tune

    console.set_quiet(True)
    cfg = load_config(overrides=[*args.overrides, f"seed={args.seed}"])
    data = prepare_for_config(args.data, cfg, progress=False)
    space = load_search_space("quick")
    results: dict[str, tuple[int, float, int]] = {}
    for pruner in args.pruners:
        identity = study_identity(cfg, data, space, pruner, args.seed)
        options = TuneOptions(
            search_space="quick",
            n_trials=args.trials,
            max_trials=args.trials,
            study_name=f"bench-{pruner}-{identity_key(identity)}",
            storage=f"sqlite:///{store}/optuna.db",
            pruner=pruner,
            register=False,
            experiment="pruning",
            seed=args.seed,
        )
        run_tune(cfg, data, options)
        study = optuna.load_study(study_name=options.study_name, storage=options.storage)
        study.set_user_attr("bench.identity", identity)
        trials = [t for t in study.get_trials() if t.state.is_finished() and not t.user_attrs.get(SKIPPED_ATTR)]
        trials = trials[: args.trials]
        trained = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
        failed = len(trials) - len(trained)
        epochs = sum(epochs_trained(t) for t in trained)
        best = max((t.value for t in trials if t.state.name == "COMPLETE"), default=float("nan"))
        results[pruner] = (epochs, best, failed)
        seconds = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
        counts = Counter(t.state.name.lower() for t in trials)
        states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        per_trial = " ".join(f"{t.number}:{trial_cell(t)}" for t in trials)
        sys.stdout.write(
            f"pruner {pruner:<9} {len(trials)} trials ({states}) | epochs trained {epochs} | "
            f"best val objective {best:.4f} | trials took {seconds:.0f}s | epochs per trial {per_trial} | "
            f"study {options.study_name}\n"
        )
        sys.stdout.flush()

    ok = True
    if "none" not in results or len(results) < 2 or not np.isfinite(results["none"][1]):
        sys.stdout.write("no unpruned reference with a completed trial to compare with: targets not decided\n")
        ok = False
    else:
        full_epochs, full_best, full_failed = results["none"]
        for pruner, (epochs, best, failed) in results.items():
            if pruner == "none":
                continue
            if failed or full_failed:
                sys.stdout.write(
                    f"{pruner} vs none: not compared, failed trials ({failed} pruned study, {full_failed} unpruned)\n"
                )
                ok = False
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
