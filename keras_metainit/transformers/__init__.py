"""Transformer initializations: T-Fixup and DeepNorm for Keras attention stacks.

- :mod:`~keras_metainit.transformers.detect`: :func:`find_blocks` reads a model's attention
  blocks (``keras.layers.MultiHeadAttention`` with its feed-forward kernels and residual
  structure, keras_hub's ``TransformerEncoder``/``TransformerDecoder``/``ViTEncoderBlock``) and
  says which layers it could not place, and why; :func:`register_block` teaches it a block layer;
  :mod:`~keras_metainit.transformers.blocks` holds what it returns and
  :mod:`~keras_metainit.transformers.graph` how it reads a functional graph;
- :mod:`~keras_metainit.transformers.rules`: how a method draws each kernel in its matrix view
  and reports it;
- :mod:`~keras_metainit.transformers.t_fixup`: :class:`TFixup` (``method="t_fixup"``),
  :func:`t_fixup`, :func:`t_fixup_factors`;
- :mod:`~keras_metainit.transformers.deepnorm`: :class:`DeepNorm` (``method="deepnorm"``),
  :class:`DeepNormInit`, :class:`DeepNormResidual`, :func:`deepnorm_constants`.

keras_hub is optional: it is never imported here; its layers are recognized by their class.
"""
from keras_metainit.transformers.blocks import (
    AttentionBlock, BlockScan, InputEmbedding, Unidentified,
)
from keras_metainit.transformers.deepnorm import (
    DeepNorm, DeepNormInit, DeepNormResidual, deepnorm_constants,
)
from keras_metainit.transformers.detect import find_blocks, register_block
from keras_metainit.transformers.t_fixup import TFixup, t_fixup, t_fixup_factors

__all__ = ["find_blocks", "register_block", "AttentionBlock", "BlockScan", "InputEmbedding",
           "Unidentified", "TFixup", "t_fixup", "t_fixup_factors", "DeepNorm", "DeepNormInit",
           "DeepNormResidual", "deepnorm_constants"]
