"""What every figure of the report shares: the style, :class:`Skipped`, the figure that saves
itself, and the checks of a results folder's files and values."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any, Iterator

import matplotlib

matplotlib.use("Agg")  # files only, never a window: the driver may run where there is no display
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8.5,
         "xtick.labelsize": 9, "ytick.labelsize": 9, "savefig.dpi": 150,
         "axes.spines.top": False, "axes.spines.right": False}


class Skipped(Exception):
    """A figure these results cannot give; its message replaces the figure in the report."""


@contextlib.contextmanager
def saved_figure(png: Path, **kwargs) -> Iterator[plt.Figure]:
    """A figure saved to ``png`` when the block ends without an error, and closed in any case."""
    fig = plt.figure(layout="constrained", **kwargs)
    try:
        yield fig
        fig.savefig(png, bbox_inches="tight", facecolor="white")
    finally:
        plt.close(fig)


def require(folder: Path, name: str) -> Path:
    """``folder / name``, or :class:`Skipped` naming the missing file."""
    path = folder / name
    if not path.is_file():
        raise Skipped(f"no {name} in the results folder")
    return path


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool: a value a trial can be ranked or placed on an axis by."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
