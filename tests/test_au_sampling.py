"""au_sampling=repeat: training images that show rare AUs are repeated (repeat-factor sampling)."""

from __future__ import annotations

import numpy as np
import pytest

from ckrun.arrays import SplitArrays, au_repeat_factors, repeat_counts, resampled
from ckrun.config import load_config
from ckrun.errors import ConfigError


def _aus() -> np.ndarray:
    """100 images: AU A on 50 (common), AU B on 4 (rare), AU C unknown on half and rare on the rest."""
    au = np.zeros((100, 3))
    au[:50, 0] = 1
    au[50:54, 1] = 1
    au[:50, 2] = -1  # unlabelled: not counted in C's frequency
    au[60:61, 2] = 1  # 1 of the 50 labelled images
    return au


def test_factors_follow_the_square_root_rule_of_the_rarest_au_an_image_shows() -> None:
    factors = au_repeat_factors(_aus(), threshold=0.16)
    assert factors[0] == 1.0  # AU A in half the images: above the threshold, never repeated
    assert factors[50] == pytest.approx(np.sqrt(0.16 / 0.04))  # AU B: 4 of 100 -> 2
    assert factors[60] == pytest.approx(np.sqrt(0.16 / 0.02))  # AU C: 1 of the 50 labelled -> 2.83
    assert factors[99] == 1.0  # no AU at all
    both = _aus()
    both[0, 1] = 1  # an image with a common and a rare AU takes the rare AU's factor
    assert au_repeat_factors(both, 0.16)[0] == pytest.approx(np.sqrt(0.16 / 0.05))
    assert (au_repeat_factors(_aus(), 0.01) == 1).all()  # every AU above 1%: nothing repeated
    assert (au_repeat_factors(np.zeros((5, 0)), 0.1) == 1).all()  # a run without AUs


def test_counts_round_stochastically_around_the_factor_and_follow_the_seed() -> None:
    factors = np.full(20000, 2.25)
    counts = repeat_counts(factors, seed=0)
    assert set(np.unique(counts)) == {2, 3} and counts.mean() == pytest.approx(2.25, abs=0.02)
    np.testing.assert_array_equal(counts, repeat_counts(factors, seed=0))
    assert (counts != repeat_counts(factors, seed=1)).any()
    np.testing.assert_array_equal(repeat_counts(np.array([1.0, 2.0, 3.0]), 5), [1, 2, 3])  # whole factors exactly


def test_resampling_repeats_images_labels_and_weights_together() -> None:
    images = np.arange(3)[:, None, None, None] * np.ones((3, 2, 2, 1))
    labels = {"emotion": np.eye(3)[[0, 1, 2]], "aus": np.array([[1.0], [0.0], [1.0]])}
    split = SplitArrays(images, labels, np.array([0.5, 1.0, 1.5]))
    out = resampled(split, np.array([1, 3, 2]))
    assert out.images[:, 0, 0, 0].tolist() == [0, 1, 1, 1, 2, 2]
    assert out.labels["emotion"].argmax(axis=1).tolist() == [0, 1, 1, 1, 2, 2]
    assert out.labels["aus"][:, 0].tolist() == [1, 0, 0, 0, 1, 1]
    assert out.weights is not None and out.weights.tolist() == [0.5, 1.0, 1.0, 1.0, 1.5, 1.5]


def test_the_fit_trains_on_the_resampled_split_and_scores_the_split_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    from ckrun.data import pipeline
    from ckrun.data.pipeline import Preprocessing
    from ckrun.train import fit_model, training_arrays

    seen: list[int] = []

    class Stop(Exception):
        pass

    def capture(images, labels, prep, *, training=False, **kwargs):  # type: ignore[no-untyped-def]
        if training:
            seen.append(len(images))
            raise Stop
        raise AssertionError("the training set is built first")

    monkeypatch.setattr(pipeline, "make_dataset", capture)
    images = np.zeros((100, 32, 32, 1), np.uint8)
    labels = {"emotion": np.eye(3, dtype=np.float32)[np.arange(100) % 3], "aus": _aus().astype(np.float32)}
    arrays = {
        "train": SplitArrays(images, labels),
        "val": SplitArrays(images[:10], {k: v[:10] for k, v in labels.items()}),
    }
    prep = Preprocessing(32, 1, "none", 0.1, mean=(0.0,), std=(1.0,), aus=("AU1", "AU2", "AU4"))
    cfg = load_config(overrides=["preset=tiny", "epochs=1", "au_sampling=repeat", "au_repeat_threshold=0.16"])
    expected = int(repeat_counts(au_repeat_factors(_aus(), 0.16), cfg.seed).sum())
    assert expected > 100
    with pytest.raises(Stop):
        fit_model(cfg, arrays, prep, verbose=False)
    assert seen == [expected] and len(training_arrays(cfg, arrays["train"]).images) == expected
    assert len(arrays["train"].images) == 100  # the split itself is untouched
    plain = cfg.updated(au_sampling="none")
    assert training_arrays(plain, arrays["train"]) is arrays["train"]


@pytest.mark.parametrize("bad", ["au_sampling=inverse", "au_repeat_threshold=0", "au_repeat_threshold=1.5"])
def test_bad_sampling_values_name_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match=bad.split("=")[0]):
        load_config(overrides=[bad])


@pytest.mark.slow
def test_a_run_logs_how_many_images_an_epoch_went_through(tmp_path, tiny_ckplus, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner
    from conftest import use_store

    from ckrun import tracking
    from ckrun.cli import cli

    use_store(monkeypatch, tmp_path)
    tiny = ["preset=tiny", "epochs=1", "min_au_count=3", "threshold_min_positives=3", "explain_images_per_class=0"]
    sets = [
        a for kv in [*tiny, "log_model=false", "au_sampling=repeat", "au_repeat_threshold=0.5"] for a in ("--set", kv)
    ]
    out = CliRunner().invoke(cli, ["train", "--data", str(tiny_ckplus), "--experiment", "sampling", *sets])
    assert out.exit_code == 0, out.output
    run = tracking.get_run(out.output.split("run id: ")[1].split()[0])
    assert run.data.params["au_sampling"] == "repeat"
    assert run.data.metrics["fit_images_per_epoch"] > int(run.data.params["n_train"])
