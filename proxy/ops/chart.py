"""A terminal bar chart of a share (0..1) over time buckets, drawn with eighth-block characters."""

from __future__ import annotations

from collections.abc import Sequence

_EIGHTHS = " ▁▂▃▄▅▆▇█"


def column_heights(shares: Sequence[float | None], height: int) -> list[int | None]:
    """Each share as a bar height in eighths of a row (None for an empty bucket)."""
    out: list[int | None] = []
    for share in shares:
        if share is None:
            out.append(None)
        else:
            clamped = min(1.0, max(0.0, share))
            out.append(round(clamped * height * 8))
    return out


def bar_chart(
    shares: Sequence[float | None],
    height: int = 8,
    left_label: str = "",
    right_label: str = "",
    ascii_only: bool = False,
) -> list[str]:
    """Rows of a chart, top first, with a y axis in percent and the time span under it.

    An empty bucket (no requests) is drawn as a blank column with a ``.`` on the axis, so a gap in
    traffic is not mistaken for a 0 % share.
    """
    if height < 1:
        raise ValueError("height must be at least 1")
    heights = column_heights(shares, height)
    rows: list[str] = []
    for row in range(height, 0, -1):
        floor = (row - 1) * 8
        cells = []
        for h in heights:
            if h is None or h <= floor:
                cells.append(" ")
            elif h >= floor + 8:
                cells.append("#" if ascii_only else _EIGHTHS[8])
            else:
                part = h - floor
                if ascii_only:
                    cells.append("#" if part >= 4 else " ")
                else:
                    cells.append(_EIGHTHS[part])
        if row == height:
            label = "100%"
        elif row == (height + 1) // 2 and height > 2:
            label = " 50%"
        else:
            label = "    "
        rows.append(f"{label} |{''.join(cells)}")
    axis = "".join("." if h is None else "-" for h in heights)
    rows.append(f"  0% +{axis}")
    width = len(heights)
    if left_label or right_label:
        gap = max(1, width - len(left_label) - len(right_label))
        rows.append("      " + left_label + " " * gap + right_label)
    return rows
