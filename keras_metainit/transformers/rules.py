"""How a Transformer initialization writes its kernels: one rule per kernel, applied at once.

A rule names a kernel (a projection, a feed-forward kernel or an embedding table), the
initializer that draws it *in its matrix view* and the method's factor on top. An attention
kernel of ``keras.layers.MultiHeadAttention`` is 3-D (``(d_model, heads, d_head)``, the output
``(heads, d_head, d_model)``), and Keras's fans of a 3-D kernel treat its first axis as a
receptive field; the matrix view ``(d_in, d_out)`` (the kernel's
:class:`~keras_metainit.layerwise.MatmulStage`) gives the fans the papers mean, the
``(out, in)`` of a PyTorch ``Linear``. :func:`apply_rules` draws each matrix, multiplies it by the
factor, writes it back in the kernel's own shape, and restores every kernel if anything fails.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple

import keras
import numpy as np

from keras_metainit.layerwise.activations import to_numpy, warn
from keras_metainit.layerwise.kinds import view_of
from keras_metainit.transformers.blocks import ROLES, BlockScan
from keras_metainit.transformers.detect import find_blocks
from keras_metainit.validation import check

__all__ = ["KernelRule", "apply_rules", "blocks_of", "check_role", "scan_notes"]


@dataclasses.dataclass
class KernelRule:
    """How one kernel is drawn.

    Attributes:
        layer: the ``Dense``/``EinsumDense`` layer, or the ``Embedding`` whose table it draws.
        part: its part of the block (``"query"``, ``"value"``, ``"ffn1"``, ``"embedding"``).
        block: the block's name (or the embedding's stack).
        role: ``"encoder"`` or ``"decoder"``.
        init: the initializer's name for the report (``"xavier_uniform"``, ``"xavier_normal"``,
            ``"normal"``).
        gain: the initializer's gain (Xavier) or standard deviation (``"normal"``).
        factor: the method's factor, applied after the draw.
    """

    layer: Any
    part: str
    block: str
    role: Optional[str]
    init: str
    gain: float = 1.0
    factor: float = 1.0

    def initializer(self, seed: int) -> keras.initializers.Initializer:
        """The initializer of the draw (on the matrix view ``(d_in, d_out)``; an embedding table
        on its own shape)."""
        if self.init == "xavier_uniform":  # limit gain·sqrt(6 / (fan_in + fan_out))
            return keras.initializers.VarianceScaling(self.gain ** 2, "fan_avg", "uniform",
                                                      seed=seed)
        if self.init == "xavier_normal":  # std gain·sqrt(2 / (fan_in + fan_out)), untruncated
            from keras_metainit.transformers.deepnorm import DeepNormInit
            return DeepNormInit(self.gain, seed=seed)
        return keras.initializers.RandomNormal(stddev=self.gain, seed=seed)


def check_role(role: Optional[str]) -> Optional[str]:
    """``role`` if it is None, ``"encoder"`` or ``"decoder"``, else a ``ValueError``."""
    check(role is None or role in ROLES, "role", role, f"None or one of {ROLES}")
    return role


def _matrix(layer) -> Tuple[Any, Tuple[int, int], Callable[[np.ndarray], None]] | str:
    """``(variable, (d_in, d_out), write)``: the kernel or table, its matrix view, and how a
    matrix of that shape is written back in the variable's own layout; or the reason the layer
    cannot be set."""
    if isinstance(layer, keras.layers.Embedding):
        if getattr(layer, "quantization_mode", None) or getattr(layer, "lora_enabled", False):
            return "a quantized or LoRA embedding"
        table = layer.embeddings
        return (table, (int(table.shape[0]), int(table.shape[1])),
                lambda w: table.assign(w.astype(table.dtype)))
    view = view_of(layer)
    if isinstance(view, str):
        return view
    stage = view.stages[0]
    return stage.kernel, (stage.fan_in, stage.units), lambda w: stage.assign(w[None])


def blocks_of(model, title: str) -> BlockScan:
    """:func:`~keras_metainit.transformers.find_blocks`, or a ``ValueError`` (listing what was
    not identified) when the model has no attention block."""
    scan = find_blocks(model)
    if not scan.blocks:
        raise ValueError(f"The model {model.name!r} has nothing for {title} to initialize: it "
                         f"found no attention block. The model is unchanged.\n{scan}")
    return scan


def scan_notes(scan: BlockScan) -> List[str]:
    """The notes every Transformer method's report carries about what was found."""
    notes = [f"blocks: {scan.count('encoder')} encoder, {scan.count('decoder')} decoder "
             f"({', '.join(sorted({b.source for b in scan.blocks}))})"]
    if scan.unidentified:
        notes.append(f"{len(scan.unidentified)} layers not identified, left as they are: "
                     + "; ".join(f"'{u.name}': {u.reason}" for u in scan.unidentified))
    return notes


def apply_rules(rules: List[KernelRule], scan: BlockScan, seed: int, notes: List[str],
                title: str, skipped: Optional[List[Dict[str, Any]]] = None
                ) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Draw every rule's kernel; return the report's ``(rows, notes)``.

    The layers ``scan`` could not identify are warned about before any kernel changes, and get a
    ``"skipped: <reason>"`` row, as do ``skipped`` rows the method adds. Each kernel is drawn once
    (a kernel two rules name keeps the first). On any error every kernel is restored.

    Args:
        rules: the kernels to draw.
        scan: what :func:`~keras_metainit.transformers.find_blocks` found.
        seed: the seed of the draws (each kernel gets its own, from this one).
        notes: the method's notes, first in the report.
        title: the method's name in warnings.
        skipped: further rows of parts the method leaves as they are.

    Returns:
        One row per kernel (``name`` = the variable's path, ``kind``, ``block``, ``role``,
        ``part``, ``status`` = ``"set"``, ``init``, ``gain``, ``factor``, ``std``) and per skipped
        part (``name``, ``kind``, ``status`` = ``"skipped: <reason>"``); the notes.

    """
    for u in scan.unidentified:
        warn(f"{title}: not identified: '{u.name}' ({u.kind}): {u.reason}; its kernels are left "
             "as they are.")
    rng = np.random.default_rng(seed)
    rows: List[Dict[str, Any]] = []
    done: Dict[int, str] = {}
    snapshot = []
    try:
        for rule in rules:
            row = {"name": rule.layer.path, "kind": type(rule.layer).__name__,
                   "block": rule.block, "role": rule.role, "part": rule.part}
            found = _matrix(rule.layer)
            if isinstance(found, str):
                rows.append({**row, "status": f"skipped: {found}"})
                continue
            variable, shape, write = found
            row["name"] = variable.path
            if id(variable) in done:
                rows.append({**row, "status": f"skipped: already set as {done[id(variable)]}"})
                continue
            snapshot.append((variable, to_numpy(variable.value)))
            values = keras.ops.convert_to_numpy(rule.initializer(int(rng.integers(2**31 - 1)))(
                shape, dtype="float32")) * rule.factor
            write(values)
            done[id(variable)] = f"{rule.part} of {rule.block}"
            rows.append({**row, "status": "set", "init": rule.init, "gain": rule.gain,
                         "factor": rule.factor, "std": float(np.std(values))})
    except BaseException:
        for variable, value in snapshot:
            variable.assign(value)
        raise
    rows += list(skipped or [])
    rows += [{"name": u.name, "kind": u.kind, "status": f"skipped: {u.reason}"}
             for u in scan.unidentified]
    return rows, notes
