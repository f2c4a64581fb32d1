"""`ckrun compare RUN_A RUN_B`: is one run really better than the other on the same test subjects?

Two runs' test scores differ by a few points; whether that is the recipe or the luck of
which frames they got right is a question about the test subjects. This reads both runs'
logged per-image predictions (``predictions/{split}.csv``, so neither model nor images are
needed), checks that they scored the very same images, and runs the paired subject-level
test of `ckrun.uncertainty.paired_comparison`.

Nothing is logged: the answer is a pure function of two runs' artifacts, so it can be
recomputed at any time, and a run of its own would add a kind that is neither trained nor
evaluated to every experiment listing. `--out` keeps the table as a CSV for a paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ckrun import tracking
from ckrun.errors import CkrunError
from ckrun.outdir import taken
from ckrun.predictions import Predictions, read_predictions_csv
from ckrun.uncertainty import PairedComparison, paired_comparison


@dataclass
class RunComparison:
    run_a: str
    run_b: str
    name_a: str
    name_b: str
    split: str
    result: PairedComparison
    aus: list[str]
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The table and one sentence per metric, as `ckrun compare` prints them."""
        r = self.result
        level = f"{r.level:.0%}"
        method = f"exact over all {r.permutations} swap patterns" if r.exact else f"{r.permutations} random swaps"
        out = [
            f"A = {self.name_a} ({self.run_a})",
            f"B = {self.name_b} ({self.run_b})",
            f"paired on {r.n_subjects} {self.split} subjects ({r.n_images} images); {level} CI: paired subject "
            f"bootstrap (B={r.samples}); p: two-sided subject permutation test ({method})",
            "",
            f"{'metric':18s} {'A':>6s} {'B':>6s} {'A-B':>7s}  {level + ' CI of A-B':>18s}  {'p':>6s}",
        ]
        for row in r.table.itertuples(index=False):
            out.append(
                f"{row.metric:18s} {row.a:6.3f} {row.b:6.3f} {row.difference:+7.3f}  "
                f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}]  {row.p_value:6.3f}"
            )
        out.append("")
        out += [self.sentence(row) for row in r.table.itertuples(index=False)]
        out += [f"note: {n}" for n in self.notes]
        return out

    def sentence(self, row: Any) -> str:
        alpha = self.result.alpha
        if row.significant:
            better = "A" if row.difference > 0 else "B"
            return (
                f"{row.metric}: {better} is significantly better "
                f"(difference {row.difference:+.3f}, p = {row.p_value:.3f} < {alpha:g})."
            )
        return (
            f"{row.metric}: no significant difference at {alpha:g} "
            f"(difference {row.difference:+.3f}, p = {row.p_value:.3f})."
        )

    def frame(self) -> pd.DataFrame:
        return self.result.table.assign(run_a=self.run_a, run_b=self.run_b, split=self.split)


def load_run_predictions(run_id: str, split: str = "test") -> tuple[Predictions, str]:
    """A run's logged predictions for `split` and its name; one-line errors when there are none."""
    try:
        run = tracking.get_run(run_id)
    except Exception:
        raise CkrunError(f"no MLflow run with id {run_id!r} in {tracking.redact_uri(tracking.configure())}") from None
    name = run.data.tags.get("mlflow.runName", run_id)
    text = tracking.read_artifact_text(run_id, f"predictions/{split}.csv")
    if not text:
        raise CkrunError(
            f"run {name} ({run_id}) has no predictions/{split}.csv: it was logged before per-image predictions "
            f"existed or has no {split} split; score its model with `ckrun evaluate` and compare that run"
        )
    return read_predictions_csv(text, f"run {name}: predictions/{split}.csv"), name


def align(a: Predictions, b: Predictions, name_a: str, name_b: str, split: str) -> tuple[Predictions, Predictions]:
    """The two runs' rows in one order; refuses runs whose test images, subjects or labels differ."""
    paths_a, paths_b = a.frame["path"].astype(str), b.frame["path"].astype(str)
    if paths_a.duplicated().any() or paths_b.duplicated().any():
        raise CkrunError(f"predictions/{split}.csv lists an image twice; cannot pair the runs")
    if set(paths_a) != set(paths_b):
        only_a, only_b = len(set(paths_a) - set(paths_b)), len(set(paths_b) - set(paths_a))
        raise CkrunError(
            f"runs {name_a} and {name_b} were tested on different {split} splits ({only_a} images only in "
            f"{name_a}, {only_b} only in {name_b}); a paired test needs the same images"
        )
    b = b.reordered(list(paths_a))
    same_subjects = (a.frame["subject"].astype(str).to_numpy() == b.frame["subject"].astype(str).to_numpy()).all()
    if not same_subjects:
        raise CkrunError(f"runs {name_a} and {name_b} assign the same {split} images to different subjects")
    if (a.emotion_targets != b.emotion_targets).any():
        raise CkrunError(f"runs {name_a} and {name_b} have different emotion labels for the same {split} images")
    return a, b


def compare_runs(
    run_a: str,
    run_b: str,
    *,
    split: str = "test",
    samples: int = 1000,
    permutations: int = 10000,
    level: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
) -> RunComparison:
    """Paired subject-level comparison of two runs' logged predictions on the same split."""
    tracking.check_store(writes=False)  # a broken store is not "no run with that id"
    pred_a, name_a = load_run_predictions(run_a, split)
    pred_b, name_b = load_run_predictions(run_b, split)
    pred_a, pred_b = align(pred_a, pred_b, name_a, name_b, split)
    notes = []
    aus = [au for au in pred_a.aus if au in pred_b.aus]
    if aus != pred_a.aus or aus != pred_b.aus:
        notes.append(
            f"the runs predict different AUs; AU metrics compare the {len(aus)} both predict ({', '.join(aus)}), "
            "so they differ from each run's logged AU scores"
        )
    pred_a, pred_b = pred_a.subset(aus), pred_b.subset(aus)
    if (pred_a.au_targets != pred_b.au_targets).any():
        raise CkrunError(f"runs {name_a} and {name_b} have different AU labels for the same {split} images")
    result = paired_comparison(
        pred_a, pred_b, samples=samples, permutations=permutations, level=level, alpha=alpha, seed=seed
    )
    if result.exact and 2 / 2**result.n_subjects >= alpha:
        notes.append(
            f"only {result.n_subjects} subjects: the smallest possible p-value is "
            f"{2 / 2**result.n_subjects:.3f}, so no difference can be significant at {alpha:g}"
        )
    return RunComparison(run_a, run_b, name_a, name_b, split, result, aus, notes)


def check_comparison_out(path: Path) -> None:
    """Refuse an existing file at `path` (nothing the user wrote is overwritten)."""
    if taken(Path(path)):  # a dangling symlink too: writing would follow it
        raise CkrunError(f"{path} exists; choose another --out (nothing the user wrote is overwritten)")


def write_comparison(comparison: RunComparison, path: Path) -> Path:
    """The comparison table as CSV at `path` (refusing to overwrite a file the user has)."""
    path = Path(path)
    check_comparison_out(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    comparison.frame().to_csv(path, index=False)
    return path
