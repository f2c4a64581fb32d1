"""Face grids: the faces per emotion are the training pixels, augmentation follows the config,
and the CK+ sequence runs from the neutral first frame to the apex."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ckrun.config import load_config


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    from ckrun.data.importers import import_dataset
    from ckrun.data.synth import SynthParams, generate_synthetic_ckplus

    root = tmp_path_factory.mktemp("grid_ck") / "CK+"
    params = SynthParams(sequences_per_subject=(2, 2), frames_per_sequence=(4, 7))
    generate_synthetic_ckplus(root, subjects=5, seed=5, workers=1, progress=False, params=params)
    return import_dataset(root).manifest


@pytest.mark.slow
def test_sampled_faces_are_the_training_pixels_of_their_class(manifest: pd.DataFrame) -> None:
    from ckrun.data.face_grid import _preprocessing, model_faces, sample_rows
    from ckrun.data.pipeline import FaceCache

    cfg = load_config(overrides=["preset=tiny"])
    rows = sample_rows(manifest, 2, seed=0)
    assert rows and all((r["emotion"] == cls).all() and 0 < len(r) <= 2 for cls, r in rows.items())
    for cls, r in rows.items():
        available = manifest.loc[manifest["emotion"] == cls, "subject"].nunique()
        assert r["subject"].nunique() == min(len(r), available)  # different people first
    prep = _preprocessing(manifest, cfg)
    cls, r = next(iter(rows.items()))
    cached = FaceCache("memory").images(manifest, prep)
    positions = [manifest.index.get_loc(i) for i in r.index]
    assert np.array_equal(model_faces(r, prep), cached[positions])


def test_augmented_faces_follow_the_config(manifest: pd.DataFrame) -> None:
    from ckrun.data.face_grid import augmented

    faces = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 1), dtype=np.uint8)
    on = augmented(faces, load_config(overrides=["preset=tiny"]))
    assert on.shape == faces.shape and on.dtype == np.uint8 and not np.array_equal(on, faces)
    assert np.array_equal(augmented(faces, load_config(overrides=["preset=tiny", "augment=false"])), faces)


@pytest.mark.slow
def test_data_describe_draws_the_three_grids(manifest: pd.DataFrame, tiny_ckplus: Path, tmp_path: Path) -> None:
    from ckrun.cli import cli
    from ckrun.data.face_grid import _sequence_rows

    label, frames = _sequence_rows(manifest)  # type: ignore[misc]
    assert label.endswith(f"({frames['emotion'].iloc[0]})")
    assert frames["position"].iloc[0] == 0.0 and frames["position"].iloc[-1] == 1.0
    assert frames["position"].is_monotonic_increasing and len(frames) <= 10
    root = tiny_ckplus
    out = tmp_path / "described"
    ran = CliRunner().invoke(
        cli,
        [
            "data",
            "describe",
            str(root),
            "--out",
            str(out),
            "--faces-per-class",
            "2",
            "--set",
            "preset=tiny",
        ],
    )
    assert ran.exit_code == 0, ran.output
    for name in ("faces_by_class.png", "faces_augmented.png", "face_sequence.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    none = tmp_path / "no_faces"
    ran = CliRunner().invoke(cli, ["data", "describe", str(root), "--out", str(none), "--faces-per-class", "0"])
    assert ran.exit_code == 0 and not (none / "faces_by_class.png").exists()
