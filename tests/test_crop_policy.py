"""`crop: auto` / `align: auto` decided once per dataset: landmarks, already-cropped faces, detector misses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from face_fixtures import blank_frames, fake_detector
from PIL import Image

from ckrun.config import load_config
from ckrun.data import align, crop_policy, faces
from ckrun.data.decode import decode_faces
from ckrun.data.geometry import placements
from ckrun.data.pipeline import FaceCache, Preprocessing
from ckrun.errors import ConfigError, DataError

SIZE = 32


def _decide(manifest: pd.DataFrame, crop: str = "auto", align_mode: str = "auto") -> crop_policy.CropDecision:
    return crop_policy.decide(manifest["path"].tolist(), manifest["landmarks"].tolist(), crop, align_mode, 0.15)


def _scales(matrices: np.ndarray) -> np.ndarray:
    return np.sqrt(np.abs(np.linalg.det(matrices[:, :, :2])))


@pytest.fixture(scope="module")
def ck_manifest(tiny_ckplus: Path) -> pd.DataFrame:
    from ckrun.data.importers import import_dataset

    return import_dataset(tiny_ckplus).manifest


@pytest.fixture(scope="module")
def precropped(ck_manifest: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """48 x 48 grey landmark crops of synthetic CK+ frames, without landmark files (the real-data setting)."""
    folder = tmp_path_factory.mktemp("precropped")
    rows = ck_manifest.iloc[::3].reset_index(drop=True)
    boxes = np.array([faces.landmark_box(faces.ckformat.read_landmarks(Path(lm)), 0.15) for lm in rows["landmarks"]])
    crops = decode_faces(rows["path"].tolist(), boxes, 48, 1)
    paths = []
    for i, crop in enumerate(crops):
        paths.append(str(folder / f"crop_{i:03d}.png"))
        Image.fromarray(crop[..., 0]).save(paths[-1])
    return pd.DataFrame({"path": paths, "landmarks": [pd.NA] * len(paths)})


# %% (a) landmarks


def test_ckplus_with_landmarks_uses_them_and_never_runs_the_detector(
    ck_manifest: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_detector(*args: object) -> None:
        raise AssertionError("the detector must not run when every image has landmarks")

    monkeypatch.setattr(faces, "detect_face", no_detector)
    decision = _decide(ck_manifest)
    assert (decision.geometry.crop, decision.geometry.align) == ("landmarks", "landmarks")
    assert decision.geometry.eye_targets == align.eye_targets(0.15)
    assert decision.params() == {"crop_resolved": "landmarks", "align_resolved": "landmarks", "crop_fallback": "none"}
    assert decision.line().startswith("faces: crop=landmarks (landmark files for all")
    assert _decide(ck_manifest, align_mode="none").geometry.align == "none"


# %% (b) already-cropped faces


def test_precropped_faces_are_all_treated_alike(precropped: pd.DataFrame) -> None:
    decision = _decide(precropped)  # OpenCV's real detector
    assert (decision.geometry.crop, decision.geometry.align) == ("none", "none")
    assert "already cropped" in decision.line() and "of 48x48" in decision.line()
    matrices = placements(precropped["path"].tolist(), precropped["landmarks"].tolist(), decision.geometry, SIZE)
    np.testing.assert_allclose(matrices, np.broadcast_to(align.box_matrix((0, 0, 48), SIZE), matrices.shape))


@pytest.mark.parametrize("hit_every", [1, 4])  # the detector finds every face, or 3 in 4 (real CK+ crops)
def test_precropped_stays_uncropped_whatever_the_detector_finds(
    precropped: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, hit_every: int
) -> None:
    paths = precropped["path"].tolist()
    fake_detector(monkeypatch, paths, miss_every=hit_every if hit_every > 1 else 0, hit=(0.5, 0.5, 0.8))
    decision = _decide(precropped)
    assert decision.geometry.crop == "none"
    images = FaceCache().images(precropped, Preprocessing(SIZE, 1, "auto", 0.15))
    plain = FaceCache().images(precropped, Preprocessing(SIZE, 1, "none", 0.15))
    np.testing.assert_array_equal(images, plain)  # one scale: a plain resize of every image


def test_square_frames_with_small_faces_are_not_mistaken_for_crops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = blank_frames(tmp_path, 16, size=(300, 300))
    fake_detector(monkeypatch, paths, hit=(0.5, 0.45, 0.35))
    manifest = pd.DataFrame({"path": paths, "landmarks": [None] * len(paths)})
    assert _decide(manifest).geometry.crop == "detector"


# %% (c) full frames, detector misses


def test_detector_misses_get_the_typical_box_not_the_whole_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = blank_frames(tmp_path, 24)  # 160 x 120
    raw = fake_detector(monkeypatch, paths, miss_every=4, hit=(0.5, 0.4, 0.5))
    manifest = pd.DataFrame({"path": paths, "landmarks": [pd.NA] * len(paths)})
    decision = _decide(manifest)
    geo = decision.geometry
    assert (geo.crop, geo.align) == ("detector", "none")
    cx, cy, side = geo.crop_fallback
    assert (cx, cy) == pytest.approx((0.5, 0.4), abs=0.01)
    assert side == pytest.approx(0.5 * 1.3, rel=0.03)  # median raw side, grown by the margin
    assert "misses get that median box" in decision.line()
    assert decision.params()["crop_resolved"] == "detector"
    scales = _scales(placements(paths, manifest["landmarks"].tolist(), geo, SIZE))
    missed = np.array([raw[p] is None for p in paths])
    assert missed.sum() == 6
    # Misses are cut at the scale of a typical hit, not zoomed out to the whole frame.
    assert scales[missed] == pytest.approx(np.median(scales[~missed]), rel=0.03)
    assert not np.isclose(scales[missed], SIZE / 160, rtol=0.2).any()
    # An explicit crop=detector is surveyed the same way, also when asked of the cache directly.
    explicit = FaceCache().images(manifest, Preprocessing(SIZE, 1, "detector", 0.15, align="none"))
    np.testing.assert_array_equal(explicit, FaceCache().images(manifest, Preprocessing(SIZE, 1, "auto", 0.15)))


def test_partial_landmarks_use_them_and_the_detector_for_the_rest(
    ck_manifest: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = ck_manifest["path"].tolist()
    fake_detector(monkeypatch, paths, miss_every=5)
    partial = ck_manifest.assign(landmarks=[lm if i % 2 else pd.NA for i, lm in enumerate(ck_manifest["landmarks"])])
    auto = _decide(partial)
    assert (auto.geometry.crop, auto.geometry.align) == ("landmarks", "none") and auto.geometry.crop_fallback
    assert auto.line().startswith("faces: crop=landmarks (landmarks for ")
    explicit = _decide(partial, crop="detector")  # as asked: the detector even where landmarks exist
    assert explicit.geometry.crop == "detector"
    matrices = placements(paths[:4], partial["landmarks"].tolist()[:4], explicit.geometry, SIZE)
    boxes = [faces.detect_face(p, 0.15) for p in paths[:4]]
    for matrix, box, path in zip(matrices, boxes, paths[:4], strict=True):
        expected = box or faces_fallback(path, explicit.geometry.crop_fallback)
        np.testing.assert_allclose(matrix, align.box_matrix(expected, SIZE))


def faces_fallback(path: str, fallback: tuple[float, ...]) -> tuple[int, int, int]:
    from ckrun.data.geometry import fallback_box

    return fallback_box(*faces.image_size(path), fallback)


def test_a_detector_that_finds_nothing_keeps_whole_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = blank_frames(tmp_path, 6)
    fake_detector(monkeypatch, paths, miss_every=1)
    decision = _decide(pd.DataFrame({"path": paths, "landmarks": [None] * 6}))
    assert decision.geometry.crop == "detector" and decision.geometry.crop_fallback == ()
    assert "misses keep the whole image" in decision.line()


def test_the_decision_is_made_once_per_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = blank_frames(tmp_path, 8)
    fake_detector(monkeypatch, paths, miss_every=3)
    calls: list[int] = []
    real = crop_policy.decide
    monkeypatch.setattr(crop_policy, "decide", lambda *a, **k: calls.append(1) or real(*a, **k))
    manifest = pd.DataFrame({"path": paths, "landmarks": [None] * 8})
    cache = FaceCache()
    first = cache.images(manifest, Preprocessing(SIZE, 1, "auto", 0.15))
    cache.images(manifest, Preprocessing(SIZE + 8, 1, "auto", 0.15))  # another size, same decision
    assert cache.decide(manifest, Preprocessing(SIZE, 1, "auto", 0.15)) == cache.decide(
        manifest, Preprocessing(8, 3, "auto", 0.15)
    )
    assert len(calls) == 1 and first.shape == (8, SIZE, SIZE, 1)


# %% explicit modes and config


def test_explicit_modes_that_cannot_work_are_named(precropped: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"crop_000\.png: crop=landmarks but \d+ of \d+ images have no landmark"):
        _decide(precropped, crop="landmarks")
    with pytest.raises(DataError, match="align=landmarks but none of the"):
        _decide(precropped, crop="none", align_mode="landmarks")
    assert _decide(precropped, crop="none", align_mode="none").line() == (
        "faces: crop=none (as configured); align=none (as configured)"
    )


def test_config_keys_are_validated_logged_and_searchable() -> None:
    import optuna

    from ckrun.tune import space as ss

    cfg = load_config(overrides=["preset=tiny", "align=eyes", "frame_weight_decay=0.5"])
    assert cfg.params()["align"] == "eyes" and cfg.params()["frame_weight_decay"] == "0.5"
    assert load_config(overrides=["preset=tiny"]).align == "auto"
    for bad in ("align=mouth", "frame_weight_decay=1.5", "frame_weight_decay=-0.1"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            load_config(overrides=[bad])
    space = ss.SearchSpace.model_validate(
        {
            "params": {
                "align": {"type": "categorical", "choices": ["auto", "none"]},
                "frame_weight_decay": {"type": "float", "low": 0.25, "high": 1.0},
            }
        }
    )
    ss.check_space(space, cfg)
    trial = optuna.trial.FixedTrial({"align": "none", "frame_weight_decay": 0.3})
    suggested = ss.suggest_config(trial, space, cfg)
    assert (suggested.align, suggested.frame_weight_decay) == ("none", 0.3)
