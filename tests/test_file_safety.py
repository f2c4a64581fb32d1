"""Nothing the user wrote is overwritten or deleted, and a write cut short leaves no trap behind.

Output folders (`data describe`, `report`) are refused when they hold files ckrun did not
write; single output files (`data import --out`, `compare --out`, `explain --out`) are refused
when anything is already at the path, a dangling symlink included (writing would follow it
and create a file wherever it points). A write cut short (full disk, signal) keeps the old
file whole and leaves the folder one the next run still takes for its own.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from ckrun import outdir
from ckrun.cli import cli
from ckrun.errors import CkrunError, DataError


def _disk_full(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_describe_refuses_a_users_folder_and_replaces_only_its_own_files(tiny_ckplus: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.md").write_text("my own summary")
    describe = ["data", "describe", str(tiny_ckplus), "--faces-per-class", "0", "--out"]

    refused = CliRunner().invoke(cli, [*describe, str(mine)])
    assert refused.exit_code == 1
    assert f"error: --out {mine} is a non-empty folder that is not a ckrun dataset description" in refused.stderr
    assert _files(mine) == {"summary.md": "my own summary"}

    out = tmp_path / "described"
    assert CliRunner().invoke(cli, [*describe, str(out)]).exit_code == 0
    first = json.loads((out / outdir.DESCRIPTION.marker).read_text())["files"]
    assert "summary.md" in first and all((out / f).is_file() for f in first)
    (out / "notes.md").write_text("the user's notes beside it")
    (out / "summary.md").write_text("stale")
    again = CliRunner().invoke(cli, [*describe, str(out)])
    assert again.exit_code == 0, again.output
    assert (out / "notes.md").read_text() == "the user's notes beside it"
    assert (out / "summary.md").read_text().startswith("# Dataset description")
    assert f"summary: {out / 'summary.md'}" in again.stdout  # where it is, not where it was built


def _staged(tmp_path: Path, names: list[str]) -> Path:
    folder = Path(tmp_path / f"staging-{len(list(tmp_path.iterdir()))}")
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"new {name}")
    return folder


def test_a_publish_cut_short_leaves_a_folder_the_next_one_takes_for_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "report"
    outdir.publish(_staged(tmp_path, ["report.md"]), out)
    (out / "notes.md").write_text("mine")
    move, moved = shutil.move, []

    def full_after_two(src: str, dst: str) -> Any:
        if len(moved) == 2:
            _disk_full()
        moved.append(dst)
        return move(src, dst)

    monkeypatch.setattr(shutil, "move", full_after_two)
    with pytest.raises(OSError, match="No space"):
        outdir.publish(_staged(tmp_path, ["figures/a.png", "figures/b.png", "report.md"]), out)
    monkeypatch.setattr(shutil, "move", move)
    assert moved == [str(out / "figures" / "a.png"), str(out / "figures" / "b.png")]  # report.md was not

    # Before, the list still named only report.md, so the next report refused figures/a.png as the user's.
    written = outdir.publish(_staged(tmp_path, ["figures/a.png", "figures/b.png", "report.md"]), out)
    assert written == ["figures/a.png", "figures/b.png", "report.md"]
    assert (out / "notes.md").read_text() == "mine"
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_dangling_symlink_at_an_output_path_is_refused(tmp_path: Path) -> None:
    from ckrun.compare import write_comparison
    from ckrun.data.importers import check_manifest_out
    from ckrun.explanations import write_explanations

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    links = tmp_path / "links"
    links.mkdir()
    for name in ("table.csv", "summary.json", "manifest.csv"):
        (links / name).symlink_to(elsewhere / name)

    class Table:
        def frame(self) -> pd.DataFrame:
            return pd.DataFrame({"metric": ["a"], "difference": [0.1]})

    with pytest.raises(CkrunError, match=r"table\.csv exists"):
        write_comparison(Table(), links / "table.csv")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"summary\.json: already exists"):
        write_explanations([], links)
    with pytest.raises(DataError, match="exists and is not a manifest ckrun wrote"):
        check_manifest_out(links / "manifest.csv", tmp_path / "data.csv")
    assert list(elsewhere.iterdir()) == []  # nothing created where the links point


def test_a_manifest_cut_short_keeps_the_previous_one_whole(
    tiny_ckplus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ckrun.data.importers import check_manifest_out
    from ckrun.data.manifest import save_manifest

    out = tmp_path / "manifest.csv"
    imported = CliRunner().invoke(cli, ["data", "import", str(tiny_ckplus), "--out", str(out)])
    assert imported.exit_code == 0, imported.output
    before = out.read_bytes()
    manifest = pd.read_csv(out)
    to_csv = pd.DataFrame.to_csv

    def half_then_full(self: pd.DataFrame, path: Any, **kwargs: Any) -> None:
        Path(path).write_text(to_csv(self, **kwargs)[:40])
        _disk_full()

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_full)
    with pytest.raises(OSError, match="No space"):
        save_manifest(manifest, out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.csv"]  # no temporary file left
    check_manifest_out(out, tiny_ckplus)  # still a manifest ckrun wrote: the next import may replace it


def test_a_default_set_cut_short_leaves_no_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ckrun.data import synth
    from ckrun.data.default import default_dataset

    monkeypatch.setenv("CKRUN_CACHE", str(tmp_path / "cache"))

    def interrupted(root: Path, **kwargs: Any) -> None:
        (root / "cohn-kanade-images").mkdir(parents=True)
        (root / "cohn-kanade-images" / "half.png").write_bytes(b"x" * 1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "generate_synthetic_ckplus", interrupted)
    with pytest.raises(KeyboardInterrupt):
        default_dataset(subjects=2, progress=False)
    assert [p.name for p in (tmp_path / "cache").iterdir() if ".tmp-" in p.name] == []

    # One left by a process killed outright (SIGKILL) goes at the next generation, under the lock.
    def complete(root: Path, **kwargs: Any) -> None:
        root.mkdir(parents=True)
        (root / synth.MARKER_FILE).write_text("{}")

    monkeypatch.setattr(synth, "generate_synthetic_ckplus", complete)
    root = default_dataset(subjects=2, progress=False)
    (tmp_path / "cache" / f".{root.name}.tmp-999999").mkdir()
    shutil.rmtree(root)
    assert default_dataset(subjects=2, progress=False) == root and synth.is_synthetic_set(root)
    assert [p.name for p in (tmp_path / "cache").iterdir() if ".tmp-" in p.name] == []


def test_a_face_cache_file_cut_short_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    from PIL import Image

    from ckrun.data import pipeline
    from ckrun.data.pipeline import FaceCache, Preprocessing

    image = tmp_path / "face.png"
    Image.new("L", (24, 24), 128).save(image)
    manifest = pd.DataFrame({"path": [str(image)], "landmarks": [pd.NA]})
    prep = Preprocessing(16, 1, "none", 0.1)
    folder = tmp_path / "cache"
    save = np.save

    def half_then_full(file: Any, array: Any, *args: Any, **kwargs: Any) -> None:
        if hasattr(file, "write"):
            file.write(b"\x93NUMPY half")
        else:
            Path(file).write_bytes(b"\x93NUMPY half")
        _disk_full()

    monkeypatch.setattr(pipeline.np, "save", half_then_full)
    with pytest.raises(OSError, match="No space"):
        FaceCache(str(folder)).images(manifest, prep)
    assert list(folder.iterdir()) == []  # before, faces-<key>.tmp.npy stayed, half written
    monkeypatch.setattr(pipeline.np, "save", save)
    faces = FaceCache(str(folder)).images(manifest, prep)
    assert [p.suffix for p in folder.iterdir()] == [".npy"]
    np.testing.assert_array_equal(np.load(next(folder.iterdir())), faces)


def _tables(database: Path) -> set[str]:
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(database)) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_study_is_never_stored_inside_the_mlflow_store_or_another_database(mlflow_store: Path) -> None:
    import sqlite3

    from ckrun.report.study import param_importances
    from ckrun.tune.storage import open_storage, resolve_storage

    store = mlflow_store / "mlflow.db"
    other = mlflow_store / "app.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    before = {path: (_tables(path), path.read_bytes()) for path in (store, other)}

    with pytest.raises(CkrunError, match=r"mlflow\.db is the MLflow store, and Optuna would add its tables"):
        open_storage(resolve_storage(f"sqlite:///{store}"))
    with pytest.raises(CkrunError, match=r"app\.db is a database without Optuna's tables"):
        open_storage(resolve_storage(f"sqlite:///{other}"))
    importances, note = param_importances("study", f"sqlite:///{store}")
    assert importances is None and note is not None and "is the MLflow store" in note
    assert {path: (_tables(path), path.read_bytes()) for path in (store, other)} == before

    # A file of its own is created, then opened again as Optuna's.
    own = f"sqlite:///{mlflow_store / 'optuna.db'}"
    open_storage(resolve_storage(own)).engine.dispose()  # type: ignore[attr-defined]
    assert "studies" in _tables(mlflow_store / "optuna.db")
    open_storage(resolve_storage(own)).engine.dispose()  # type: ignore[attr-defined]


def test_a_journal_storage_refuses_a_file_that_is_not_an_optuna_journal(tmp_path: Path) -> None:
    from ckrun.tune.storage import open_storage, resolve_storage

    notes = tmp_path / "notes.log"
    notes.write_text("my notes, not a journal\n")
    with pytest.raises(CkrunError, match=r"notes\.log is not an Optuna journal"):
        open_storage(resolve_storage(str(notes)))
    assert notes.read_text() == "my notes, not a journal\n"

    # A new journal is created, and opened again once it holds a study.
    import optuna

    journal = tmp_path / "study.log"
    optuna.create_study(study_name="s", storage=open_storage(resolve_storage(str(journal))))
    assert optuna.load_study(study_name="s", storage=open_storage(resolve_storage(f"journal://{journal}")))


def test_run_refuses_a_users_report_folder_before_any_stage(mlflow_store: Path) -> None:
    from mlflow.tracking import MlflowClient

    mine = mlflow_store / "reports" / "ckrun"
    mine.mkdir(parents=True)
    (mine / "notes.md").write_text("my notes")

    result = CliRunner().invoke(cli, ["run", "--n-trials", "0", "--set", "preset=tiny"])

    assert result.exit_code == 1
    assert "error: --out reports/ckrun is a non-empty folder that is not a ckrun report" in result.stderr
    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert client.search_runs(experiments) == []  # before, every stage ran and logged, then the report was refused
    assert _files(mine) == {"notes.md": "my notes"}


def test_explanations_cut_short_take_back_what_they_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from ckrun import explanations
    from ckrun.figures import images

    drawn: list[Path] = []

    def plot(face: object, panels: object, path: Path, title: str) -> Path:
        if drawn:
            raise KeyboardInterrupt  # Ctrl-C while the second overlay is drawn
        path.write_bytes(b"png")
        drawn.append(path)
        return path

    monkeypatch.setattr(images, "plot_attribution_panels", plot)
    monkeypatch.setattr(explanations, "_panels", lambda e: [])
    faces = [SimpleNamespace(face=None, stem=s, path=f"{s}.png") for s in ("a", "b")]
    out = tmp_path / "explained"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    with pytest.raises(KeyboardInterrupt):
        explanations.write_explanations(faces, out)  # type: ignore[arg-type]
    assert drawn and not drawn[0].exists()
    assert [p.name for p in out.iterdir()] == ["notes.md"]  # the user's file stays, so a rerun is not refused
