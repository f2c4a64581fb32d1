"""`ckrun data ...`: generate, import and describe datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ckrun.cli.common import CONTEXT, friendly_errors, load_cfg, require_writable

# How `ckrun data ...` lets the user change what a data error suggests (see ckrun.errors.option_hint).
DATA_SPELLINGS = {
    "split_method=random": "--split random",
    "split_method=subject": "--split subject",
    "allow_subject_overlap=true": "--allow-subject-overlap",
    "require_emotion=true": "--require-emotion",
}


def allow_overlap_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--allow-subject-overlap",
        is_flag=True,
        help="accept a predefined split column that puts one subject in several splits (identity leakage)",
    )(func)


@click.group(context_settings=CONTEXT)
def data() -> None:
    """Generate, import and describe datasets."""


@data.command("synth")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--subjects", type=click.IntRange(min=1), default=40, help="number of synthetic subjects")
@click.option("--seed", type=click.IntRange(min=0), default=0, help="random seed (same seed, same bytes)")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="processes  [default: min(2, CPUs)]")
@click.option(
    "--difficulty",
    type=click.Choice(["easy", "realistic"]),
    default="realistic",
    show_default=True,
    help="realistic: modelled on real CK+ (the embedded default); easy: strong cartoon expressions, for fast tests",
)
@friendly_errors
def data_synth(out: Path, subjects: int, seed: int, workers: int | None, difficulty: str) -> None:
    """Write a synthetic CK+ in the official layout to OUT."""
    from ckrun.data.synth import generate_synthetic_ckplus

    require_writable(out, "OUT", folder=True)
    summary = generate_synthetic_ckplus(
        out, subjects=subjects, seed=seed, workers=workers, difficulty=difficulty, progress=True
    )
    click.echo(
        f"wrote {summary.frames} frames of {summary.sequences} sequences "
        f"({summary.sequences_with_emotion} with emotion) for {summary.subjects} subjects to {out} "
        f"in {summary.elapsed_s:.1f}s ({difficulty})"
    )


@data.command("import")
@click.argument("data_path", metavar="DATA", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("manifest.csv"), help="manifest CSV to write")
@click.option(
    "--format", "fmt", type=click.Choice(["auto", "ckplus", "csv", "folders"]), default="auto", help="dataset layout"
)
@click.option("--peak-frames", type=click.IntRange(min=1), default=3, help="last N frames of a CK+ sequence labelled")
@click.option("--require-emotion", is_flag=True, help="drop images without an emotion label")
@click.option(
    "--on-bad-image",
    type=click.Choice(["error", "skip"]),
    default="error",
    help="stop at an unreadable image, or skip and list it",
)
@click.option(
    "--split",
    "split_mode",
    type=click.Choice(["subject", "random"]),
    default="subject",
    help="random allows data without subject ids (scores will be optimistic)",
)
@click.option("--path-column", default="path", help="CSV column holding image paths")
@click.option("--emotion-column", default="emotion", help="CSV column holding emotion names")
@click.option("--subject-column", default="subject", help="CSV column holding subject ids")
@click.option("--au-prefix", default="AU", help="prefix of CSV AU columns (e.g. FACS_ maps FACS_12 to AU12)")
@allow_overlap_option
@friendly_errors
def data_import(
    data_path: Path,
    out: Path,
    fmt: str,
    peak_frames: int,
    require_emotion: bool,
    on_bad_image: str,
    split_mode: str,
    path_column: str,
    emotion_column: str,
    subject_column: str,
    au_prefix: str,
    allow_subject_overlap: bool,
) -> None:
    """Import DATA (CK+ root, manifest CSV or folder-per-class tree) into a manifest CSV.

    --out must not be DATA itself, lie inside a DATA folder, or be a file ckrun did not write.
    """
    from ckrun.data.importers import check_manifest_out, import_dataset
    from ckrun.data.manifest import save_manifest
    from ckrun.data.summary import format_summary, summarize
    from ckrun.errors import spell_options

    require_writable(out, "--out")
    check_manifest_out(out, data_path)
    with spell_options(DATA_SPELLINGS):
        result = import_dataset(
            data_path,
            fmt=fmt,
            peak_frames=peak_frames,
            require_emotion=require_emotion,
            on_bad_image=on_bad_image,
            split_random=split_mode == "random",
            path_column=path_column,
            emotion_column=emotion_column,
            subject_column=subject_column,
            au_prefix=au_prefix,
            allow_subject_overlap=allow_subject_overlap,
            progress=True,
        )
    save_manifest(result.manifest, out)
    click.echo(format_summary(summarize(result)))
    click.echo(f"manifest: {out}")


@data.command("describe")
@click.argument("data_path", metavar="DATA", required=False, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("reports/dataset"),
    help="output folder; a new or empty one, or one an earlier `data describe` wrote (only its files are replaced)",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, help="split seed (subjects per split)")
@click.option(
    "--split",
    "split_method",
    type=click.Choice(["auto", "subject", "random", "predefined"]),
    default="auto",
    help="how to split: by subject, at random (data without subjects), the data's split column, or auto",
)
@allow_overlap_option
@click.option(
    "--faces-per-class",
    type=click.IntRange(min=0, max=20),
    default=6,
    show_default=True,
    help="sample faces per emotion drawn as the model sees them, augmented, and one CK+ sequence (0 = none)",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="run config the face grids follow (image_size, crop, align, augmentation...), e.g. --set preset=tiny",
)
@friendly_errors
def data_describe(
    data_path: Path | None,
    out: Path,
    seed: int,
    split_method: str,
    allow_subject_overlap: bool,
    faces_per_class: int,
    overrides: tuple[str, ...],
) -> None:
    """Counts, image sizes, AU frequency and co-occurrence, splits, bias tables and face grids for DATA."""
    from ckrun.data.describe import describe_into
    from ckrun.data.loader import prepare_data
    from ckrun.errors import spell_options

    require_writable(out, "--out", folder=True)
    with spell_options(DATA_SPELLINGS):
        prepared = prepare_data(
            data_path, seed=seed, split_method=split_method, allow_subject_overlap=allow_subject_overlap
        )
    face_cfg = load_cfg(None, overrides) if faces_per_class else None
    desc = describe_into(prepared.manifest, out, progress=True, faces=face_cfg, faces_per_class=faces_per_class)
    click.echo(f"described {len(prepared.manifest)} images from {prepared.source}")
    click.echo(f"summary: {desc.files.get('summary', out / 'summary.md')}")
