"""Would an emotion-conditioned AU prior (label co-occurrence) help the AU head? Replayed on logged runs.

    .venv/bin/python bench/bench_au_prior.py STORE [STORE ...] [--name-like 'default-%']

CK+'s emotion labels were assigned from each sequence's FACS codes, so which AUs are active is
strongly tied to the emotion, and the emotion head is the more accurate one. The prior this
tries: P(AU | emotion) counted on the run's own training rows (Laplace-smoothed), mixed into
the AU head's probabilities as (1 - w) * p_au + w * sum_e p(e | image) * P(AU | e), with `w`
chosen on val by AU macro-F1 from 0, 0.1, ..., 0.5 (ties to the smaller) and the AU thresholds
re-tuned on the mixed val probabilities by the run's rule (ckrun.metrics.tune_thresholds).

Every input is what a run already logged: `data/split.csv` (the training rows' labels) and
`predictions/{val,test}.csv` (the fused, flipped probabilities the run scored), so nothing is
trained. w = 0 reproduces the run's logged `test_au_f1`, which the table shows as a check.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def au_prior(train: pd.DataFrame, aus: list[str]) -> np.ndarray:
    """P(AU | emotion) on labelled training rows, (positives + 1) / (rows + 2): classes x AUs."""
    from ckrun.data.labels import EMOTION_CLASSES

    rows = train[train["emotion"].isin(EMOTION_CLASSES)]
    return np.array(
        [
            [(rows.loc[rows["emotion"] == c, a].fillna(0).clip(lower=0).sum() + 1) / ((rows["emotion"] == c).sum() + 2)
             for a in aus]
            for c in EMOTION_CLASSES
        ]
    )  # fmt: skip


def replay(run_id: str, min_positives: int, shrinkage: float) -> dict[str, float] | None:
    """Test AU macro/weighted F1 without the prior, with val's weight, and at each fixed weight;
    None for a run without the logged split and predictions (e.g. a baseline run)."""
    from ckrun.metrics import au_scores, tune_thresholds
    from ckrun.report import collect

    split = collect.split_manifest(run_id)
    val, test = collect.predictions(run_id, "val"), collect.predictions(run_id, "test")
    if split is None or val is None or test is None:
        return None
    prior = au_prior(split[split["split"] == "train"], val.aus)

    def scores(w: float) -> tuple[float, float, float]:
        v_mix = (1 - w) * val.au_probs + w * (val.emotion_probs @ prior)
        t_mix = (1 - w) * test.au_probs + w * (test.emotion_probs @ prior)
        thresholds = tune_thresholds(val.au_targets, v_mix, min_positives=min_positives, shrinkage=shrinkage)
        v, _ = au_scores(val.au_targets, v_mix, thresholds, val.aus)
        t, _ = au_scores(test.au_targets, t_mix, thresholds, test.aus)
        return round(v["au_f1"], 9), t["au_f1"], t["au_f1_weighted"]

    by_weight = {w: scores(w) for w in GRID}
    chosen = GRID[int(np.argmax([by_weight[w][0] for w in GRID]))]
    out = {"w": chosen, "macro_0": by_weight[0.0][1], "weighted_0": by_weight[0.0][2]}
    out |= {"macro_w": by_weight[chosen][1], "weighted_w": by_weight[chosen][2]}
    out |= {f"macro_{w}": by_weight[w][1] for w in GRID[1:]}
    return out


def main() -> None:
    from _store import add_replay_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_replay_arguments(parser)
    args = parser.parse_args()

    from _store import replayed_rows

    from ckrun.markdown import markdown_table

    rows = replayed_rows(args.stores, args.name_like, lambda run_id: replay(run_id, args.min_positives, args.shrinkage))
    table = pd.DataFrame(rows).sort_values("run")
    columns = ["run", "logged", "macro_0", "w", "macro_w", "weighted_0", "weighted_w"]
    print(markdown_table(table[columns], index=False, floatfmt=".3f"))
    delta = table["macro_w"] - table["macro_0"]
    print(
        f"\n{len(table)} runs. Test AU macro-F1 with val's weight minus without: {delta.mean():+.4f} "
        f"(better on {(delta > 1e-9).sum()}, worse on {(delta < -1e-9).sum()}); weighted-F1 "
        f"{(table['weighted_w'] - table['weighted_0']).mean():+.4f}."
    )
    fixed = ", ".join(f"w={w}: {(table[f'macro_{w}'] - table['macro_0']).mean():+.4f}" for w in GRID[1:])
    print(f"At a fixed weight, mean change in test AU macro-F1: {fixed}.")


if __name__ == "__main__":
    main()
