"""Layer-wise initialization: set each layer from its own input activations, in order.

The package holds the machinery of the layer-wise methods :class:`~keras_metainit.methods.LSUV`
and :class:`~keras_metainit.methods.Sylvester`, one idea per module:

- :mod:`~keras_metainit.layerwise.walk`: plan the layers (in the order the model calls them),
  draw the examples, read each layer's input where it is called, let the method set it, restore
  every touched layer on any error or ``KeyboardInterrupt``;
- :mod:`~keras_metainit.layerwise.activations`: a layer's inputs (an intercepted forward pass),
  image patches, pooled variances;
- :mod:`~keras_metainit.layerwise.stages`: how a kernel maps a layer's input to its
  pre-activations (a matmul, a convolution, ...), with the kernel's matrix view;
- :mod:`~keras_metainit.layerwise.kinds`: which Keras layer is which chain of stages (its
  :class:`LayerView`), and :func:`register_layer` to teach the methods a custom layer;
- :mod:`~keras_metainit.layerwise.lsuv` and :mod:`~keras_metainit.layerwise.sylvester`: the two
  methods, each one object the walk calls (``examples_needed``, ``set_layer``);
- :mod:`~keras_metainit.layerwise.sylvester_maths`: the Sylvester maths (:func:`latent_code`,
  :func:`sylvester_solve`).

A layer-wise method is a :class:`~keras_metainit.methods.LayerwiseMethod`: its options are its
constructor's arguments, and :meth:`~keras_metainit.methods.LayerwiseMethod.run` hands the
object itself to :func:`~keras_metainit.layerwise.walk.walk`.
"""
from keras_metainit.layerwise.activations import (
    LayerwiseError, conv_patches, layer_input, layer_inputs, pooled_variance,
)
from keras_metainit.layerwise.kinds import (
    LayerView, preactivation, preactivation_variance, register_layer, view_of,
)
from keras_metainit.layerwise.lsuv import LSUV
from keras_metainit.layerwise.stages import (
    ConvStage, DepthwiseStage, GroupedConvStage, MatmulStage, Stage, TransposeStage,
)
from keras_metainit.layerwise.sylvester import Sylvester
from keras_metainit.layerwise.sylvester_maths import (
    LABEL_NOISE, LATENTS, RCOND, RIDGE, SylvesterSolution, latent_code, sylvester_solve,
)
from keras_metainit.layerwise.walk import walk

__all__ = [
    "LayerwiseError", "conv_patches", "layer_input", "layer_inputs", "pooled_variance",
    "Stage", "MatmulStage", "ConvStage", "GroupedConvStage", "DepthwiseStage", "TransposeStage",
    "LayerView",
    "register_layer", "view_of", "preactivation", "preactivation_variance",
    "LSUV", "Sylvester", "SylvesterSolution", "latent_code", "sylvester_solve",
    "RIDGE", "RCOND", "LABEL_NOISE", "LATENTS", "walk",
]
