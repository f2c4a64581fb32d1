"""Face alignment and placement: eyes on fixed targets, the eye cascade, cache keys, predict = training."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from face_fixtures import blank_frames, fake_detector

from ckrun.data import align, ckformat, faces, geometry
from ckrun.data.geometry import FaceGeometry, placement
from ckrun.data.pipeline import FaceCache, Preprocessing
from ckrun.predict import Predictor

SIZE = 96


def _rotated_face(folder: Path, angle: float, gap: float = 80.0, name: str = "face") -> tuple[Path, Path, np.ndarray]:
    """A light disc face with two black eyes whose line is tilted by `angle` degrees.

    The landmark file has the 6 points of each eye on a small ring around its centre (so
    their mean is the centre) and the other 56 points on the face outline.
    """
    folder.mkdir(parents=True, exist_ok=True)
    centre = np.array([200.0, 180.0])
    theta = np.radians(angle)
    half = gap / 2 * np.array([np.cos(theta), np.sin(theta)])
    eyes = np.stack([centre - half + [0, -20], centre + half + [0, -20]])
    image = np.full((360, 400), 150, np.uint8)
    cv2.circle(image, (200, 180), 110, 220, -1, lineType=cv2.LINE_AA)
    for x, y in eyes:
        cv2.circle(image, (round(x * 16), round(y * 16)), 8 * 16, 0, -1, lineType=cv2.LINE_AA, shift=4)
    ring = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    points = np.zeros((68, 2))
    outline = [i for i in range(68) if not 36 <= i < 48]
    around = np.linspace(0, 2 * np.pi, len(outline), endpoint=False)
    points[outline] = centre + 105 * np.column_stack([np.cos(around), np.sin(around)])
    points[36:42] = eyes[0] + 10 * np.column_stack([np.cos(ring), np.sin(ring)])
    points[42:48] = eyes[1] + 10 * np.column_stack([np.cos(ring), np.sin(ring)])
    path = folder / f"{name}.png"
    cv2.imwrite(str(path), image)
    landmarks = folder / f"{name}_landmarks.txt"
    ckformat.write_landmarks(landmarks, points)
    return path, landmarks, eyes


def _dark_blobs(face: np.ndarray) -> np.ndarray:
    """Intensity-weighted centres (x, y) of the dark blobs in the upper half, left to right."""
    upper = face[: face.shape[0] // 2].astype(float)
    count, labels = cv2.connectedComponents((upper < 80).astype(np.uint8))
    centres = []
    for k in range(1, count):
        ys, xs = np.nonzero(labels == k)
        w = 255 - upper[ys, xs]
        centres.append([np.average(xs, weights=w), np.average(ys, weights=w)])
    return np.array(sorted(centres))


# %% landmarks


@pytest.mark.parametrize("angle", [-25.0, 0.0, 18.0])
def test_alignment_puts_the_eye_centres_on_the_targets_and_levels_them(tmp_path: Path, angle: float) -> None:
    path, landmarks, eyes = _rotated_face(tmp_path, angle)
    geo = FaceGeometry("landmarks", 0.15, align="landmarks", eye_targets=align.eye_targets(0.15))
    matrix = placement(str(path), str(landmarks), geo, SIZE)
    targets = np.asarray(geo.targets).reshape(2, 2) * SIZE - 0.5
    np.testing.assert_allclose(align.apply(matrix, eyes), targets, atol=1e-6)
    face = faces_of([str(path)], matrix[None])[0, :, :, 0]
    blobs = _dark_blobs(face)
    assert blobs.shape == (2, 2)
    np.testing.assert_allclose(blobs, targets, atol=1.0)
    assert abs(blobs[0, 1] - blobs[1, 1]) < 0.5  # level


def faces_of(paths: list[str], matrices: np.ndarray, channels: int = 1) -> np.ndarray:
    from ckrun.data.decode import decode_faces

    return decode_faces(paths, matrices, SIZE, channels)


def test_targets_keep_the_landmark_crop_scale() -> None:
    # With margin m the landmark box fills 1/(1+2m) of the output; the eye gap is EYE_GAP of it.
    for margin in (0.0, 0.15, 0.4):
        lx, ly, rx, ry = align.eye_targets(margin)
        assert rx - lx == pytest.approx(align.EYE_GAP / (1 + 2 * margin))
        assert ly == ry == pytest.approx(0.5 - align.EYE_RISE / (1 + 2 * margin))
        assert lx + rx == pytest.approx(1.0)


def test_aligned_faces_keep_the_scale_and_centre_of_landmark_crops(tiny_ckplus: Path) -> None:
    # The eye targets are calibrated on the 68-point mean face: on (synthetic) CK+ faces an
    # aligned crop must frame the face like the landmark crop it replaces, give or take a few %.
    from ckrun.data.importers import import_dataset

    manifest = import_dataset(tiny_ckplus).manifest.dropna(subset=["landmarks"]).iloc[::5]
    geo = FaceGeometry("landmarks", 0.15, align="landmarks")
    ratios, shifts = [], []
    for landmarks in manifest["landmarks"]:
        points = ckformat.read_landmarks(Path(landmarks))
        box = faces.landmark_box(points, 0.15)
        aligned = align.eye_matrix(align.landmark_eyes(points), geo.targets, SIZE)
        assert aligned is not None
        ratios.append(np.sqrt(np.linalg.det(aligned[:, :2])) / (SIZE / box[2]))
        centre = np.array([box[1] + box[2] / 2 - 0.5, box[0] + box[2] / 2 - 0.5])
        shifts.append(align.apply(aligned, centre[None])[0] - (SIZE / 2 - 0.5))
    assert 0.9 < np.median(ratios) < 1.1
    assert np.abs(np.median(shifts, axis=0)).max() < 0.05 * SIZE


def test_unusable_eyes_keep_the_box(tmp_path: Path) -> None:
    path, landmarks, _ = _rotated_face(tmp_path, 0.0)
    points = ckformat.read_landmarks(landmarks)
    points[36:42], points[42:48] = points[42:48].copy(), points[36:42].copy()  # eyes swapped
    ckformat.write_landmarks(landmarks, points)
    geo = FaceGeometry("landmarks", 0.15, align="landmarks")
    box = faces.landmark_box(points, 0.15)
    np.testing.assert_allclose(placement(str(path), str(landmarks), geo, SIZE), align.box_matrix(box, SIZE))
    assert align.eye_matrix(np.array([[10.0, 10.0], [11.0, 10.0]]), geo.targets, SIZE) is None  # 1 px apart


def test_enlarged_crops_have_no_dark_fringe_but_padding_is_black(tmp_path: Path) -> None:
    # A 48 x 48 white crop resized to 96 (the pre-cropped case): white to the very edge.
    cv2.imwrite(str(tmp_path / "white.png"), np.full((48, 48), 255, np.uint8))
    out = faces_of([str(tmp_path / "white.png")], align.box_matrix((0, 0, 48), SIZE)[None])
    assert (out == 255).all()
    # A box reaching 12 px above the image: the first quarter of the output is black padding.
    out = faces_of([str(tmp_path / "white.png")], align.box_matrix((-12, 0, 48), SIZE)[None])[0, :, :, 0]
    assert (out[:23] == 0).all() and (out[25:] == 255).all()


def test_sixteen_bit_images_keep_their_top_eight_bits(tmp_path: Path) -> None:
    from PIL import Image

    wide = (np.arange(48 * 48).reshape(48, 48) * 28).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    from ckrun.data.decode import decode_faces

    same = decode_faces([str(tmp_path / "wide.png")], align.box_matrix((0, 0, 48), 48)[None], 48, 1)
    np.testing.assert_array_equal(same[0, :, :, 0], wide >> 8)


# %% eye cascade


class FakeEyes:
    """Eye boxes in the rescaled search region, as OpenCV's cascade returns them."""

    def __init__(self, boxes: list[list[int]]) -> None:
        self.boxes, self.seen = np.array(boxes), []

    def detectMultiScale(self, region: np.ndarray, **kwargs: object) -> np.ndarray:
        self.seen.append(region.shape)
        return self.boxes


def test_eye_cascade_picks_the_largest_eye_each_side_in_image_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeEyes([[40, 50, 20, 20], [130, 52, 24, 24], [45, 60, 10, 10]])  # the small one loses
    monkeypatch.setattr(align, "_eye_cascade", lambda: fake)
    grey = np.zeros((600, 500), np.uint8)
    eyes = align.detect_eyes(grey, (100, 50, 400))  # searched at 200 px: half size
    assert fake.seen == [(120, 200)]  # the upper 60% of the box
    np.testing.assert_allclose(eyes, [[149.5, 219.5], [333.5, 227.5]])
    fake.boxes = np.array([[40, 50, 20, 20], [60, 50, 20, 20]])  # both on the left: no angle
    assert align.detect_eyes(grey, (100, 50, 400)) is None


def test_eyes_mode_falls_back_to_the_typical_eyes_of_the_box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _, _ = _rotated_face(tmp_path, 10.0)
    monkeypatch.setattr(align, "detect_eyes", lambda grey, box: None)
    typical = (0.3, 0.4, 0.7, 0.4)
    geo = FaceGeometry("none", 0.15, align="eyes", eye_targets=align.eye_targets(0.15), eye_fallback=typical)
    matrix = placement(str(path), None, geo, SIZE)
    box = faces.full_box(400, 360)
    expected = align.apply(matrix, align.box_eyes(box, typical))
    np.testing.assert_allclose(expected, np.reshape(geo.targets, (2, 2)) * SIZE - 0.5, atol=1e-6)
    without = FaceGeometry("none", 0.15, align="eyes", eye_targets=align.eye_targets(0.15))
    np.testing.assert_allclose(placement(str(path), None, without, SIZE), align.box_matrix(box, SIZE))


# %% cache keys and prediction


def test_cache_key_changes_with_everything_the_pixels_depend_on() -> None:
    base = Preprocessing(48, 1, "landmarks", 0.15)
    changed = [
        Preprocessing(48, 1, "landmarks", 0.15, align="landmarks"),
        Preprocessing(48, 1, "landmarks", 0.15, align="landmarks", eye_targets=(0.3, 0.3, 0.7, 0.3)),
        Preprocessing(48, 1, "landmarks", 0.15, align="eyes", eye_targets=(0.3, 0.3, 0.7, 0.3)),
        Preprocessing(48, 1, "landmarks", 0.15, align="eyes", eye_fallback=(0.3, 0.4, 0.7, 0.4)),
        Preprocessing(48, 1, "detector", 0.15),
        Preprocessing(48, 1, "detector", 0.15, crop_fallback=(0.5, 0.4, 0.6)),
        Preprocessing(48, 1, "landmarks", 0.2),
        Preprocessing(40, 1, "landmarks", 0.15),
        Preprocessing(48, 3, "landmarks", 0.15),
    ]
    keys = [p.cache_key() for p in [base, *changed]]
    assert len(set(keys)) == len(keys)
    same = Preprocessing(48, 1, "landmarks", 0.15, mean=(3.0,), std=(2.0,), aus=("AU1",), thresholds=(0.3,))
    assert same.cache_key() == base.cache_key()


def test_face_cache_decodes_again_when_alignment_changes(tmp_path: Path) -> None:
    path, landmarks, _ = _rotated_face(tmp_path, 20.0)
    manifest = pd.DataFrame({"path": [str(path)], "landmarks": [str(landmarks)]})
    cache = FaceCache()
    boxed = cache.images(manifest, Preprocessing(SIZE, 1, "landmarks", 0.15, align="none"))
    aligned = cache.images(manifest, Preprocessing(SIZE, 1, "landmarks", 0.15, align="auto"))
    assert not np.array_equal(boxed, aligned)
    target_row = align.eye_targets(0.15)[1] * SIZE - 0.5
    assert np.abs(_dark_blobs(aligned[0, :, :, 0])[:, 1] - target_row).max() < 1.5  # level at the target row


def _predicted_equals_cached(manifest: pd.DataFrame, prep: Preprocessing, landmarks: bool) -> None:
    cache = FaceCache()
    resolved = cache.resolve(manifest, prep)
    cached = cache.images(manifest, resolved)
    logged = Preprocessing.from_json(resolved.to_json())  # what travels with the model
    predictor = Predictor(None, logged)
    paths = manifest["path"].tolist()
    np.testing.assert_array_equal(predictor.faces(paths), cached)  # landmark files found by path
    if landmarks:
        np.testing.assert_array_equal(predictor.faces(paths, manifest["landmarks"].tolist()), cached)


def test_predict_places_ckplus_frames_as_training_did(tiny_ckplus: Path) -> None:
    from ckrun.data.importers import import_dataset

    manifest = import_dataset(tiny_ckplus).manifest.iloc[::15].reset_index(drop=True)
    prep = Preprocessing(32, 1, "auto", 0.15, align="auto")
    assert FaceCache().resolve(manifest, prep).align == "landmarks"
    _predicted_equals_cached(manifest, prep, landmarks=True)


def test_predict_places_detector_misses_as_training_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = blank_frames(tmp_path, 12)
    fake_detector(monkeypatch, paths, miss_every=3)
    manifest = pd.DataFrame({"path": paths, "landmarks": [pd.NA] * len(paths)})
    prep = Preprocessing(32, 1, "auto", 0.15, align="auto")
    assert FaceCache().resolve(manifest, prep).crop_fallback  # misses get the typical box
    _predicted_equals_cached(manifest, prep, landmarks=False)


def test_placements_check_their_inputs(tmp_path: Path) -> None:
    path, _, _ = _rotated_face(tmp_path, 0.0)
    with pytest.raises(ValueError, match="1 paths but 2 landmark entries"):
        geometry.placements([str(path)], [None, None], FaceGeometry("none", 0.1), SIZE)
    assert geometry.landmark_list([None, pd.NA, float("nan"), "", "x.txt"]) == [None, None, None, None, "x.txt"]
