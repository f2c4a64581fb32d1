"""Dataset import: any supported layout in, one checked manifest out.

- `importer`: detects the format, runs its reader, checks the result once (`import_dataset`).
- `ckplus`, `csv`, `folders`: one reader per format; they parse and return a `RawImport`.
- `files`, `tables`: what the readers share (image files and CK+ names; CSV tables and
  demographics). `images`: the image check the importer runs. `integrity`: checks of the
  table as a whole (duplicate rows, a leaky predefined split, tiny faces).

The manifest schema the readers fill lives in `ckrun.data.manifest`; nothing in this
package imports `importer` except callers outside it.
"""

from ckrun.data.importers.importer import check_manifest_out, detect_format, import_dataset, load_manifest

__all__ = ["check_manifest_out", "detect_format", "import_dataset", "load_manifest"]
