"""The regimes of ``benchmarks/regimes.py``, one module each, in the order they run.

Each module has ``NUMBER``, ``TITLE``, ``CLAIM`` (what the papers claim there) and
``tables(quick) -> list of keras_metainit.experiments.runner.Table``.
"""
from regimes import depth, high_lr, recovery, residual, transformer

REGIMES = {m.KEY: m for m in (high_lr, transformer, residual, depth, recovery)}
