"""One subject's sequences, from expression to files: pose, frames, images and CK+ label files.

`generate_subject` is a worker process's unit of work. It draws everything from the subject's
own stream in a fixed order, so the bytes it writes do not depend on which process runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from ckrun.data import ckformat
from ckrun.data.synth.drawing import draw_face
from ckrun.data.synth.expressions import Expression, sample_expression
from ckrun.data.synth.identity import Subject, sample_subject
from ckrun.data.synth.landmarks import deform, neutral_landmarks, ramp
from ckrun.data.synth.params import SubjectCounts, SynthParams
from ckrun.data.synth.pose import View
from ckrun.data.synth.scene import Noise, background, finish, gain_map, noise_bank
from ckrun.data.synth.skin import apply_texture

# Sub filter + Huffman-only deflate: twice as fast as libpng's defaults on noisy frames
# and smaller than level 1 (the noise leaves little for LZ77 to find anyway).
_PNG_OPTIONS = [
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_SUB,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
]


def _affine(scale: float, angle: float, cx: float, cy: float) -> np.ndarray:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, cx], [s, c, cy]])


def _shift_into(low: float, high: float, lo_bound: float, hi_bound: float) -> float:
    """Translation that moves the span [low, high] inside [lo_bound, hi_bound] (centred if too big)."""
    if high - low > hi_bound - lo_bound:
        return (lo_bound + hi_bound) / 2 - (low + high) / 2
    if low < lo_bound:
        return lo_bound - low
    if high > hi_bound:
        return hi_bound - high
    return 0.0


def _sequence_views(
    rng: np.random.Generator, size: tuple[int, int], frames: list[np.ndarray], params: SynthParams
) -> list[View]:
    """Per-frame head pose: a per-sequence placement and turn plus a small drift, all landmarks in view."""
    w, h = size
    jitter = rng.uniform(-1, 1, 6)
    scale = 0.27 * h * (1 + jitter[0] * params.scale_jitter)
    angle = np.deg2rad(jitter[1] * params.rotation_deg)
    cx = w / 2 + jitter[2] * params.position_jitter * w
    cy = 0.4 * h + jitter[3] * params.position_jitter * h
    yaw, pitch = jitter[4] * params.yaw_deg, jitter[5] * params.pitch_deg
    steps = rng.normal(0, params.frame_jitter_px, (len(frames), 3))
    steps[0] = 0
    drift = np.clip(np.cumsum(steps, axis=0), -8, 8)
    turns = rng.normal(0, params.pose_drift_deg, (len(frames), 2))
    turns[0] = 0
    turn = np.clip(np.cumsum(turns, axis=0), -3, 3)
    views = [
        View(
            _affine(scale, angle + np.deg2rad(0.15 * d[2]), cx + d[0], cy + d[1]),
            yaw=float(np.deg2rad(yaw + t[0])),
            pitch=float(np.deg2rad(pitch + t[1])),
        )
        for d, t in zip(drift, turn, strict=True)
    ]
    pts = np.vstack([v.to_pixels(lm) for v, lm in zip(views, frames, strict=True)])
    margin = 6
    dx = _shift_into(pts[:, 0].min(), pts[:, 0].max(), margin, w - 1 - margin)
    dy = _shift_into(pts[:, 1].min(), pts[:, 1].max(), margin, h - 1 - margin)
    shift = np.array([[0, 0, round(dx)], [0, 0, round(dy)]])
    return [View(v.affine + shift, yaw=v.yaw, pitch=v.pitch) for v in views]


def _strengths(
    expr: Expression, onsets: Mapping[int, float], expressivity: float, t: float, params: SynthParams
) -> dict[int, float]:
    """AU magnitudes at time t in [0, 1]: the FACS level's magnitude times the subject's expressivity, ramped."""
    return {au: expressivity * params.intensity_strength[level - 1] * ramp(t, onsets[au]) for au, level in expr.levels}


def _write_sequence(
    root: Path, subject: Subject, sequence: str, rng: np.random.Generator, params: SynthParams, noise: Noise
) -> tuple[int, bool]:
    """One neutral-to-peak sequence with its labels; returns (frames, has an Emotion file)."""
    expr = sample_expression(rng, params)
    low, high = params.frames_per_sequence
    n = int(rng.integers(low, high + 1))
    onsets = {au: float(rng.uniform(0, 0.3)) for au, _ in expr.levels}
    neutral = neutral_landmarks(subject.face)
    strengths = [_strengths(expr, onsets, subject.face.expressivity, k / (n - 1), params) for k in range(n)]
    frames = [deform(neutral, s, expr.side) for s in strengths]
    views = _sequence_views(rng, subject.size, frames, params)
    w, h = subject.size
    channels = subject.palette.channels
    backdrop = background(rng, w, h, channels, params.background_texture)
    gain = gain_map(rng, w, h, channels, views[0].affine, params)
    blur = float(rng.uniform(*params.blur_sigma))
    sid = subject.subject_id
    ckformat.image_path(root, sid, sequence, 1).parent.mkdir(parents=True, exist_ok=True)
    for k, (lm, view, s) in enumerate(zip(frames, views, strengths, strict=True)):
        img = backdrop.copy()
        shading = {au: v * params.wrinkle_contrast for au, v in s.items()}
        draw_face(img, view, subject, lm, shading, expr.side)
        apply_texture(img, subject.texture, view)
        img = finish(img, gain, noise, rng, blur)
        cv2.imwrite(str(ckformat.image_path(root, sid, sequence, k + 1)), img, _PNG_OPTIONS)
        ckformat.write_landmarks(ckformat.landmarks_path(root, sid, sequence, k + 1), view.to_pixels(lm))
    ckformat.write_facs(ckformat.facs_path(root, sid, sequence, n), expr.coded)
    if expr.has_emotion:
        ckformat.write_emotion(ckformat.emotion_path(root, sid, sequence, n), expr.label)
    return n, expr.has_emotion


def generate_subject(root: str, seed: int, index: int, subject_id: str, params: SynthParams) -> SubjectCounts:
    """All sequences of one subject (a worker process's unit of work)."""
    subject, rng = sample_subject(seed, index, subject_id, params)
    low, high = params.sequences_per_subject
    sequences = int(rng.integers(low, high + 1))
    noise = noise_bank(rng, *subject.size, subject.palette.channels, params.noise_sigma)
    frames = with_emotion = 0
    for k in range(sequences):
        n, labelled = _write_sequence(Path(root), subject, f"{k + 1:03d}", rng, params, noise)
        frames += n
        with_emotion += labelled
    return SubjectCounts(sequences, frames, with_emotion)
