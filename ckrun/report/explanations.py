"""Report section: where on the face the best run looks (its logged Grad-CAM explanations).

Shows the per-AU share of attribution inside the AU's facial region beside the region's own
area (what attention spread evenly would give), and the overlays the run logged under
``explanations/``. A share well above the area means the AU is read where FACS says it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ckrun import tracking
from ckrun.data.labels import au_label
from ckrun.report import collect
from ckrun.report.document import Block, Figure, Heading, Paragraph, Table

OVERLAYS_SHOWN = 6


def _share_frame(per_au: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for au, values in per_au.items():
        area = values["region_area"]
        rows.append(
            {
                "action unit": au_label(au),
                "region": values["region"].replace("_", " "),
                "images": values["images"],
                "share inside": f"{values['share']:.0%}",
                "region area": f"{area:.0%}",
                "share / area": f"{values['share'] / area:.1f}" if area > 0 else "—",
            }
        )
    return pd.DataFrame(rows)


def explanation_blocks(best: pd.Series, fig_dir: Path) -> list[Block]:
    """The best run's overlays and region shares, or a note on how to get them."""
    run_id, name = best["run_id"], str(best["run"])
    blocks: list[Block] = [Heading(2, "Explanations on the face")]
    summary = collect.json_artifact(run_id, "explanations/summary.json")
    if not summary:
        note = f"{name} logged no explanations (set `explain_images_per_class` above 0, or run `ckrun explain`)."
        return [*blocks, Paragraph(note)]
    blocks.append(
        Paragraph(
            f"Grad-CAM of {name} on {summary.get('images', 0)} test faces, as the model sees them. For every "
            "predicted AU with a facial region (drawn from the CK+ landmarks), the share of its attribution "
            "inside that region; the region's area is what attention spread evenly would give."
        )
    )
    per_au = summary.get("per_au") or {}
    if per_au:
        blocks.append(Table(_share_frame(per_au), "Attribution inside each AU's facial region (predicted AUs only)"))
    for overlay in summary.get("overlays", [])[:OVERLAYS_SHOWN]:
        local = tracking.copy_artifact(run_id, f"explanations/{overlay}", fig_dir / "explanations" / overlay)
        if local is not None:
            blocks.append(Figure(local, f"{overlay}: the face, the predicted emotion's map, each predicted AU's map"))
    return blocks
