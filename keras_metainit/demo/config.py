"""The demo's settings: :class:`DemoConfig` (what every contender of a scene gets) and
:data:`QUICK` (a tiny run for tests and smoke checks)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

__all__ = ["DemoConfig", "QUICK", "SCENES"]

#: The scenes, in the order they run: key -> what it shows.
SCENES = {
    "transformer": "where the suite pays: a Post-LN Transformer without warmup",
    "mlp": "where it does not: a deep plain ReLU MLP at a gentle rate, He's home ground",
}


@dataclass(frozen=True)
class DemoConfig:
    """Settings of one ``demo`` run.

    The Transformer scene is regime 2 of ``benchmarks/regimes.py`` at Adam 3e-3 and a shorter
    budget (200 steps: the learned init solves the task in about 120); the MLP scene is the
    earlier demo's network (20 ReLU layers) at SGD 0.01 on the bundled Fashion-MNIST subset.
    """

    scenes: Tuple[str, ...] = ("transformer", "mlp")
    seeds: int = 2
    # the Transformer scene: a Post-LN encoder reversing sequences, Adam, no warmup
    layers: int = 6
    dim: int = 32
    ffn: int = 64
    vocab: int = 16
    length: int = 16
    steps: int = 200
    batch_size: int = 64
    adam_lr: float = 3e-3
    # the MLP scene: a plain ReLU MLP, SGD with momentum 0.9
    depth: int = 20
    width: int = 64
    mlp_steps: int = 200
    sgd_lr: float = 0.01
    train_size: int = 6000
    test_size: int = 2000
    init_steps: int = 0  # a learned default's steps (0: the rule's own, choose.ATTENTION_STEPS)
    out: str = "keras-metainit-demo"
    plots: bool = True  # write the figures (needs matplotlib, installed with the package)


#: What ``--quick`` changes: a tiny run for tests and smoke checks (seconds, not minutes).
QUICK = {"layers": 2, "dim": 16, "ffn": 32, "steps": 30, "depth": 4, "width": 16,
         "mlp_steps": 30, "train_size": 1024, "test_size": 512, "init_steps": 2}
