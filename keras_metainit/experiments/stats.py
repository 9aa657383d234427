"""The experiments' one statistics convention and one verdict rule.

- A table cell is the **mean ± sample standard deviation** (``ddof=1``) over seeds.
- **Verdict rule**: a difference between two contenders counts when it is beyond two standard
  errors of the difference, ``|mean_a - mean_b| > 2 * sqrt(s_a²/n_a + s_b²/n_b)``; otherwise the
  two are *within the seed spread*. At exactly two standard errors it does not count.
- Seeds are ``0, 1, ..., n - 1`` (:func:`seeds`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

__all__ = ["mean_std", "fmt", "Comparison", "compare", "seeds"]


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """``(mean, sample standard deviation)``; the std of a single value is 0.

    Examples:
        >>> mean_std([1.0, 2.0, 3.0])
        (2.0, 1.0)
    """
    a = np.asarray(values, float)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def fmt(values: Sequence[float], digits: int = 3) -> str:
    """``"mean ± std"`` of :func:`mean_std`."""
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b`` by the verdict rule.

    Attributes:
        diff: ``mean(a) - mean(b)``.
        margin: two standard errors of the difference.
    """

    diff: float
    margin: float

    @property
    def above(self) -> bool:
        """``a`` is above ``b`` beyond the seed spread."""
        return self.diff > self.margin

    @property
    def below(self) -> bool:
        """``a`` is below ``b`` beyond the seed spread."""
        return self.diff < -self.margin

    @property
    def word(self) -> str:
        return "above" if self.above else "below" if self.below else "within the seed spread of"

    def __str__(self) -> str:
        return f"{self.word} ({self.diff:+.3f}, margin {self.margin:.3f})"


def compare(a: Sequence[float], b: Sequence[float]) -> Comparison:
    """The verdict rule: ``a`` against ``b``, with margin ``2 * sqrt(s_a²/n_a + s_b²/n_b)``.

    Args:
        a: one value per seed (at least one each).
        b: one value per seed (at least one each).

    Returns:
        A :class:`Comparison`.

    Examples:
        >>> compare([0.8, 0.82, 0.81], [0.1, 0.1, 0.11]).above
        True
    """
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    return Comparison(ma - mb, 2.0 * math.sqrt(sa ** 2 / len(a) + sb ** 2 / len(b)))


def seeds(n: int) -> List[int]:
    """The seeds of an ``n``-seed run: ``[0, ..., n - 1]``."""
    return list(range(n))
