"""Every private Keras and TensorFlow name the package reaches, in one place.

Keras and TensorFlow may rename or drop any of these in a release; each is reached here, with the
version it was checked against, so that a new release is checked (and mended) in one file. Checked
against **keras 3.15.1** and **TensorFlow 2.21.0**, on the TensorFlow and JAX (0.10) backends.

=====================================  ==========================================  =============
Name                                   Why                                         Used by
=====================================  ==========================================  =============
``keras.src.trainers.data_adapters``   ``unpack_x_y_sample_weight``: ``fit``'s     data.py
``.data_adapter_utils``                own split of ``(x, y, sample_weight)``
``keras.src.trainers.compile_utils``   ``CompileLoss``: the compiled loss's        losses.py
                                       structure and weights
``tf.__internal__.EagerTensor``        a softmax output's logits are read from     autodiff/
                                       its graph op, which an eager tensor lacks   tensorflow.py
``keras.src.backend.jax``              ``_to_backend_layout``: a                   learned/jax.py
``.distribution_lib``                  ``keras.distribution`` layout as a JAX
                                       sharding
``Functional._inputs_struct``,         a functional model's inputs in their        data.py,
``._nodes_by_depth``                   structure, and the layers that consume      transformers/
                                       them (an integer input's vocabulary); the   graph.py
                                       nodes of a graph in order
``Model._build_shapes_dict``           the input shapes a subclassed model was     data.py
                                       built with
``Layer._flatten_layers``              every sublayer, nested ones included        model_fn.py,
                                                                                   layerwise/walk.py,
                                                                                   transformers/
``Layer._dtype_policy``                a lower-precision layer computes in         model_fn.py
                                       float32 during initialization
``Layer._call_has_training_arg``       whether ``call`` takes ``training``         model_fn.py
``Layer._kernel``                      the kernel variable where ``kernel`` is a   layerwise/kinds.py
                                       property over it (LoRA, quantized layers)
``KerasTensor._keras_history``,        the graph node that produced a Keras        transformers/
``Operation._inbound_nodes``           tensor (a functional graph read backwards)  graph.py
``Node.arguments``                     the positional and keyword arguments of a   transformers/
                                       call in a graph (an attention's query,      graph.py
                                       value; ``reverse=True``)
``keras.src.ops.numpy.Add``            ``x + y`` on Keras tensors: a residual      transformers/
                                       merge written without ``layers.Add``        graph.py
=====================================  ==========================================  =============

:mod:`keras_metainit.losses` also reads private attributes of Keras objects directly
(``_outputs_struct``, ``_compile_loss``, ``_flat_losses``, ``_user_loss_weights``,
``_fn_kwargs``, ``_keras_history``, ``_keras_logits``, ``_functional``; checked against the same
versions); they move here with that module's rewrite for every backend.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from keras.src.trainers import compile_utils  # keras 3.15.1
from keras.src.trainers.data_adapters import data_adapter_utils  # keras 3.15.1

__all__ = ["compile_utils", "data_adapter_utils", "require_tensorflow", "is_eager_tensor",
           "jax_layout",
           "inputs_struct", "nodes_by_depth", "build_shapes", "flatten_layers", "dtype_policy",
           "set_dtype_policy", "call_has_training_arg", "kernel_variable", "producing_node",
           "call_arguments", "is_symbolic_add"]


def require_tensorflow(what: str, module: str = "tensorflow"):
    """``module`` (TensorFlow, or ``tensorflow_datasets``), imported now for ``what``; an
    ``ImportError`` naming the ``tensorflow`` extra where it is missing. As keras-hub's
    ``tensor_utils`` does, a package left half-uninstalled (an empty ``tensorflow/`` folder, which
    imports as a namespace package) counts as missing.

    Args:
        what: what needs it, for the message (e.g. ``"Loading data by name"``).
        module: the module to import.

    Returns:
        The module.

    Examples:

    ```python
    from keras_metainit._compat import require_tensorflow

    try:
        tfds = require_tensorflow("Loading data by name", "tensorflow_datasets")
    except ImportError as e:  # the message names the tensorflow extra
        print(e)
    ```
    """
    import importlib

    try:
        found = importlib.import_module(module)
    except ImportError:
        found = None
    if found is None or getattr(found, "__file__", None) is None:
        raise ImportError(
            f"{what} needs `{module}`, which is not installed. Install keras-metainit's "
            "TensorFlow extra: pip install \"keras-metainit[tensorflow]\". On JAX and torch, "
            "data can come without TensorFlow: NumPy arrays, a Python iterable of batches or a "
            "keras.utils.PyDataset.")
    return found


def is_eager_tensor(x: Any) -> bool:
    """Whether ``x`` is a TensorFlow eager tensor (``tf.__internal__.EagerTensor``, TF 2.21).

    TensorFlow is imported here only when asked, so the JAX backend does not need it for this."""
    import tensorflow as tf

    return isinstance(x, tf.__internal__.EagerTensor)


def jax_layout(layout):
    """A ``keras.distribution`` ``TensorLayout`` as a ``jax.sharding.Sharding``
    (``keras.src.backend.jax.distribution_lib._to_backend_layout``, keras 3.15.1; JAX only)."""
    from keras.src.backend.jax.distribution_lib import _to_backend_layout

    return _to_backend_layout(layout)


def inputs_struct(functional):
    """A functional model's input tensors in the structure it was built with
    (``Functional._inputs_struct``, keras 3.15.1)."""
    return functional._inputs_struct


def nodes_by_depth(functional) -> Dict[int, list]:
    """A functional model's graph nodes by depth (``Functional._nodes_by_depth``, keras 3.15.1)."""
    return functional._nodes_by_depth


def build_shapes(model) -> Optional[Dict[str, Any]]:
    """The shapes a (subclassed) model was built with, or None
    (``Layer._build_shapes_dict``, keras 3.15.1)."""
    return getattr(model, "_build_shapes_dict", None)


def flatten_layers(layer, include_self: bool = True, recursive: bool = True) -> List:
    """Every layer under ``layer``, nested ones included (``Layer._flatten_layers``, keras
    3.15.1); ``layer.layers`` for an object without it."""
    if hasattr(layer, "_flatten_layers"):
        return list(layer._flatten_layers(include_self=include_self, recursive=recursive))
    return ([layer] if include_self else []) + list(getattr(layer, "layers", []))


def dtype_policy(layer):
    """The layer's dtype policy object, or None (``Layer._dtype_policy``, keras 3.15.1)."""
    return getattr(layer, "_dtype_policy", None)


def set_dtype_policy(layer, policy) -> None:
    """Replace the layer's dtype policy without Keras's setter, which refuses a built layer
    (``Layer._dtype_policy``, keras 3.15.1)."""
    object.__setattr__(layer, "_dtype_policy", policy)


def call_has_training_arg(model) -> bool:
    """Whether the model's ``call`` takes ``training`` (``Layer._call_has_training_arg``, keras
    3.15.1; True when the attribute is absent)."""
    return getattr(model, "_call_has_training_arg", True)


def kernel_variable(layer):
    """The layer's kernel variable: ``_kernel`` where ``kernel`` is a property over it (keras
    3.15.1), else ``kernel``."""
    v = getattr(layer, "_kernel", None)
    return v if v is not None else layer.kernel


def producing_node(tensor):
    """The graph node that produced a Keras tensor, or None for a model input
    (``KerasTensor._keras_history`` and ``Operation._inbound_nodes``, keras 3.15.1)."""
    history = getattr(tensor, "_keras_history", None)
    if history is None or history.operation is None:
        return None
    return history.operation._inbound_nodes[history.node_index]


def call_arguments(node):
    """``(args, kwargs)`` of the call a functional-graph node records (``Node.arguments``,
    keras 3.15.1)."""
    return node.arguments.args, node.arguments.kwargs


def is_symbolic_add(op) -> bool:
    """Whether a graph operation is ``x + y`` on Keras tensors (``keras.src.ops.numpy.Add``,
    keras 3.15.1)."""
    return type(op).__name__ == "Add" and type(op).__module__ == "keras.src.ops.numpy"
