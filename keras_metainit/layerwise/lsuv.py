"""LSUV: layer-sequential unit-variance initialization, as a method object of the walk.

Mishkin & Matas, "All you need is a good init", ICLR 2016.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import keras
import numpy as np

from keras_metainit import validation
from keras_metainit.layerwise.activations import LayerwiseError, describe, warn
from keras_metainit.layerwise.kinds import stage_variance
from keras_metainit.layerwise.stages import Stage
from keras_metainit.methods.base import LayerwiseMethod

__all__ = ["LSUV", "orthonormal"]


def orthonormal(stage: Stage, seed: int) -> None:
    """Set the stage's kernel orthonormal in its matrix view and zero its bias.

    One group (``Dense``, a convolution): ``keras.initializers.Orthogonal(seed)`` on
    ``(fan_in, units)``, orthonormal columns, one per output unit (the same draw as on the
    kernel's own shape). Several groups (a depthwise or grouped convolution): each group's
    matrix orthonormal. No matrix view (a transposed convolution):
    ``Orthogonal`` on the kernel's shape.

    Args:
        stage: the stage to set.
        seed: the seed of the draw.
    """
    if not stage.has_matrix_view:
        init = keras.initializers.Orthogonal(seed=seed)
        stage.kernel.assign(keras.ops.cast(init(tuple(stage.kernel.shape)), stage.kernel.dtype))
    elif stage.groups == 1:
        d = int(np.prod(stage.kernel.shape)) // stage.units
        w = keras.ops.convert_to_numpy(keras.initializers.Orthogonal(seed=seed)((d, stage.units)))
        stage.assign(w[None])
    else:
        w = stage.matrix()
        g = np.random.default_rng(seed).standard_normal(w.shape)
        tall = w.shape[1] >= w.shape[2]
        q, r = np.linalg.qr(g if tall else np.swapaxes(g, 1, 2))
        q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
        stage.assign(q if tall else np.swapaxes(q, 1, 2))
    if stage.bias is not None:
        stage.bias.assign(np.zeros(tuple(stage.bias.shape), stage.bias.dtype))


class LSUV(LayerwiseMethod):
    """LSUV: orthonormal init, then rescale each layer to unit pre-activation variance.

    Layer by layer, in the order the model calls them, every kernel is first set orthonormal
    (:func:`orthonormal`: in Keras's layout, the kernel reshaped to ``(fan_in, units)`` has
    orthonormal columns, one per output unit; a depthwise kernel per channel) and its bias
    zeroed; then, on one batch, ``W ← W / √Var`` until ``|Var − 1| < tol`` or ``max_iter``
    rescalings, where ``Var`` is the variance over all elements of the layer's output *before*
    its activation, computed from the layer's weights. Each layer sees the new activations of
    the layers before it. A ``SeparableConv`` is two stages, each brought to unit variance:
    its depthwise output, then its pre-activation.

    Any model works (Sequential, Functional, subclassed, nested models, layers inside blocks):
    a layer's input is read where it is called. Layers set: ``Dense``, ``EinsumDense`` (a
    product on trailing axes), ``Conv1D/2D/3D`` (grouped too), their ``Transpose`` versions,
    ``DepthwiseConv1D/2D``, ``SeparableConv1D/2D``; a shared layer is set from all its calls.
    Other layers that own a kernel (``Embedding``, recurrent cells,
    quantized or LoRA layers, subclasses that override ``call``) are skipped with a warning and
    a ``"skipped: <reason>"`` row. A custom layer is taught with
    :func:`keras_metainit.layerwise.register_layer`::

        layerwise.register_layer(Affine, lambda layer: layerwise.LayerView(
            [layerwise.MatmulStage(layer.w, layer.b)], activation=keras.activations.relu))

    ``report.layers`` has one row per layer: ``name``, ``kind``, ``status``, ``var_before``
    (with the layer's original weights), ``var_after``, ``iterations``, ``seconds`` (``calls``
    for a shared layer). On any error the model is restored to its weights before the call.

    Args:
        tol: tolerance on ``|Var − 1|`` (0.1).
        max_iter: most rescalings per layer (10).
        orthogonal: start from the orthonormal kernels (the paper); ``False`` only rescales the
            kernels as they are (biases kept).
        seed: seed of the orthonormal kernels (default: the ``seed`` of ``meta_initialize``;
            the ``i``-th layer of the walk uses ``seed + i``).

    Examples:
        >>> import keras, keras_metainit, numpy as np
        >>> from keras_metainit.methods import LSUV
        >>> model = keras.Sequential([keras.Input((16, 16, 1)),
        ...                           keras.layers.Conv2D(8, 3, activation="relu"),
        ...                           keras.layers.Flatten(), keras.layers.Dense(10)])
        >>> images = np.random.rand(32, 16, 16, 1).astype("float32")  # no labels needed
        >>> report = keras_metainit.meta_initialize(model, images, method=LSUV(tol=0.05),
        ...                                         verbose=0)
        >>> [round(row["var_after"], 1) for row in report.layers]  # each layer's, within tol
        [1.0, 1.0]

    Reference:
        Mishkin & Matas, "All you need is a good init", ICLR 2016.
    """

    aliases = ("lsuv",)

    def __init__(self, tol: float = 0.1, max_iter: int = 10, orthogonal: bool = True,
                 seed: Optional[int] = None):
        self.tol = validation.real("tol", tol, low=0, low_open=True)
        self.max_iter = validation.positive_int("max_iter", max_iter)
        validation.check(isinstance(orthogonal, bool), "orthogonal", orthogonal, "a bool")
        self.orthogonal = orthogonal
        self.seed = validation.seed(seed)

    def set_layer(self, target, inputs: List[np.ndarray], y, run) -> Dict[str, Any]:
        """Pre-initialize and rescale every stage of the layer in order; return its row."""
        layer, view, last = target.layer, target.view, len(target.view.stages) - 1
        var_before = stage_variance(view, last, inputs, layer)
        iterations = 0
        for si, stage in enumerate(view.stages):
            if self.orthogonal:
                orthonormal(stage, run.seed + target.index + 100_003 * si)
            var = stage_variance(view, si, inputs, layer)
            steps = 0
            while abs(var - 1.0) >= self.tol and steps < self.max_iter:
                if not var > 0.0:
                    raise LayerwiseError(
                        f"The pre-activation of layer {describe(layer)} has variance {var} on the "
                        "batch: it cannot be rescaled to 1 (are its inputs all zero?).")
                stage.kernel.assign(stage.kernel.value / math.sqrt(var))
                steps += 1
                var = stage_variance(view, si, inputs, layer)
            iterations += steps
        status = "set"
        if abs(var - 1.0) >= self.tol:
            status = f"set: not converged after {self.max_iter} iterations"
            warn(f"LSUV: layer {describe(layer)} did not reach |Var - 1| < {self.tol} in "
                 f"{self.max_iter} iterations (Var = {var:.4g}); a large bias?")
        return {"status": status, "var_before": var_before, "var_after": var,
                "iterations": iterations}
