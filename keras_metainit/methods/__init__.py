"""Initialization methods: small objects holding hyperparameters, resolved like Keras optimizers.

The base classes, :class:`Chain` and the resolution (:func:`get`, :func:`serialize`,
:func:`deserialize`, :func:`available`, :func:`register`) are in
:mod:`keras_metainit.methods.base`; each learned method has its own module
(:mod:`~keras_metainit.methods.metainit`, :mod:`~keras_metainit.methods.gradinit`,
:mod:`~keras_metainit.methods.gradcosine`), the layer-wise ones live with their machinery in
:mod:`keras_metainit.layerwise`, the Transformer ones (T-Fixup, DeepNorm) with the block finder in
:mod:`keras_metainit.transformers`. This module is the registry, written out as Keras's
``keras/src/optimizers/__init__.py`` writes its ``ALL_OBJECTS``: adding a built-in method is its
class and a line here.
"""
# In reading order (the documentation lists them so): the base, the learned methods, the
# layer-wise and the analytic ones (which import the base themselves).
from keras_metainit.methods.base import (_REGISTRY, DEFAULT, AnalyticMethod, Chain,
                                         ConstrainedMethod, LayerwiseMethod, LearnedMethod, Method,
                                         available, deserialize, get, register, serialize,
                                         unregister)
from keras_metainit.methods.metainit import MetaInit
from keras_metainit.methods.gradinit import GradInit
from keras_metainit.methods.gradcosine import GradCosine
from keras_metainit.layerwise.lsuv import LSUV
from keras_metainit.layerwise.sylvester import Sylvester
from keras_metainit.transformers.t_fixup import TFixup
from keras_metainit.transformers.deepnorm import DeepNorm

#: The built-in methods, in the order :func:`available` (and the command line's
#: ``init --method``) lists them; a tuple, not Keras's set, because that order is shown.
ALL_OBJECTS = (MetaInit, GradInit, GradCosine, LSUV, Sylvester, TFixup, DeepNorm)
#: alias -> class of the built-in methods
ALL_OBJECTS_DICT = {alias: cls for cls in ALL_OBJECTS for alias in cls.aliases}

for _cls in ALL_OBJECTS:
    register(_cls)
del _cls

__all__ = ["Method", "LearnedMethod", "ConstrainedMethod", "LayerwiseMethod", "AnalyticMethod",
           "MetaInit", "GradInit", "GradCosine", "LSUV", "Sylvester", "TFixup", "DeepNorm",
           "Chain", "get", "serialize",
           "deserialize", "available", "register", "unregister", "DEFAULT", "ALL_OBJECTS",
           "ALL_OBJECTS_DICT"]
