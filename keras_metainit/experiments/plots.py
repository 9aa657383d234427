"""Figure plumbing shared by the demo and the benchmarks: matplotlib with the Agg backend, and
writing a figure. (What each figure shows is in its script or in ``keras_metainit.demo.figures``.)
"""
from __future__ import annotations

from typing import Any, Optional

__all__ = ["pyplot", "save_figure"]


def pyplot() -> Optional[Any]:
    """``matplotlib.pyplot`` with the Agg backend, or None (said once) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figure (pip install matplotlib)")
        return None
    return plt


def save_figure(fig: Any, path: str, dpi: int = 100) -> str:
    """Lay out, write and close ``fig``; return ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
