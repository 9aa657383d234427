"""Objectives over a batch in parts (micro-batches): the same values and scale gradients as the
whole batch, for every learned method; and the parts really run one at a time."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_metainit as km
from keras_metainit import methods, shards
from keras_metainit.learned.tensorflow import TensorFlowRun
from keras_metainit.model_fn import make_loss_fn
from keras_metainit.losses import resolve_loss
from keras_metainit.report import InitReport

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _model(dtype="float64", seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((6,), dtype=dtype),
        keras.layers.Dense(8, "tanh", bias_initializer="random_normal", dtype=dtype),
        keras.layers.Dense(8, "tanh", bias_initializer="random_normal", dtype=dtype),
        keras.layers.Dense(3, dtype=dtype),
    ])


def _batches(method, n=16, dtype="float64", seed=1):
    rng = np.random.default_rng(seed)
    raw = tuple((tf.constant(rng.normal(size=(n, 6)), dtype), tf.constant(rng.integers(0, 3, n)))
                for _ in range(method.batches_per_step))
    return method.prepare(raw)


def _value_and_grad(method, model, batches, micro_batches):
    loss_fn = make_loss_fn(model, resolve_loss(model, CE), training=method.training)
    run = TensorFlowRun(model, method, loss_fn, InitReport(method=method.name, config={}), size=16,
                        micro_batches=micro_batches)
    s = np.random.default_rng(2).uniform(0.7, 1.3, len(run.tuned))
    value, grad, constraint, metrics, ok = run._run(tf.constant(s, tf.float32), batches)
    return float(value), grad.numpy(), bool(constraint), {k: float(v) for k, v in metrics.items()}


METHODS = [
    methods.MetaInit(),
    methods.MetaInit(hvp="finite_difference"),
    methods.GradInit(gamma=1e3),  # look-ahead steps
    methods.GradInit(gamma=1e-3, step="adam"),  # constraint steps (l1 norm)
    methods.GradCosine(gamma=1e3),
    methods.GradCosine(gamma=1e3, splits=3, overlap=0.3, target="gc_gn"),  # chunks across parts
]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: repr(m)[:40])
@pytest.mark.parametrize("parts", [2, 4])
def test_micro_batches_give_the_whole_batch_objective_and_scale_gradient(method, parts):
    model = _model()
    batches = _batches(method)
    v1, g1, c1, m1 = _value_and_grad(method, model, batches, 1)
    vk, gk, ck, mk = _value_and_grad(method, model, batches, parts)
    assert c1 == ck
    assert abs(vk - v1) <= 1e-6 * abs(v1)
    assert np.all(g1 != 0)
    np.testing.assert_allclose(gk, g1, rtol=1e-5)  # float32 scales; the model computes in float64
    for k in m1:
        assert abs(mk[k] - m1[k]) <= 1e-6 * abs(m1[k]) + 1e-12, (k, m1, mk)


def test_staged_gradient_matches_finite_differences():
    """Independent of the direct path: central differences of the micro-batched GQ (float64)."""
    model = _model()
    method = methods.MetaInit()
    batches = _batches(method)
    loss_fn = make_loss_fn(model, resolve_loss(model, CE))
    params0 = [v.value for v in model.trainable_variables]
    kernels = [i for i, p in enumerate(params0) if len(p.shape) >= 2]

    def objective(s, shards_):
        params = list(params0)
        for j, i in enumerate(kernels):
            params[i] = s[j] * params[i]
        return method.objective(loss_fn, params, shards_)

    parts = shards.split(batches, 4)
    s = tf.constant([0.9, 1.1, 1.05], tf.float64)
    _, grad, _, _ = shards.value_and_grad(objective, s, parts, 16)
    h = 1e-5
    for j in range(3):
        e = tf.one_hot(j, 3, dtype=tf.float64) * h
        plus = shards.values(objective, s + e, parts, 16)[0]
        minus = shards.values(objective, s - e, parts, 16)[0]
        fd = float(plus - minus) / (2 * h)
        assert abs(float(grad[j]) - fd) <= 1e-6 * abs(fd), (j, float(grad[j]), fd)


def test_parts_run_one_after_another():
    """Each part's forward pass starts after the previous part's contribution is computed (a
    control dependency): that is what keeps one part's activations in memory at a time."""
    model = _model()
    method = methods.GradCosine()
    batches = _batches(method)
    loss_fn = make_loss_fn(model, resolve_loss(model, CE), training=True)
    params = [v.value for v in model.trainable_variables]

    @tf.function
    def staged(b):
        return shards.values(lambda s, sh: method.objective(loss_fn, params, sh), tf.ones([1]),
                             shards.split(b, 4), 16)[0]

    graph = staged.get_concrete_function(batches).graph
    waits = [op for op in graph.get_operations()
             if op.type == "Identity" and op.control_inputs]
    assert len(waits) >= 3 * len(tf.nest.flatten(batches)), [op.name for op in waits]


def test_meta_initialize_with_micro_batches_sets_the_same_scales(fmnist_flat):
    x, y = fmnist_flat[0][:512], fmnist_flat[1][:512]
    reports = []
    for micro in (1, 4):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((784,))]
                                 + [keras.layers.Dense(32, "relu") for _ in range(3)]
                                 + [keras.layers.Dense(10)])
        reports.append(km.meta_initialize(model, (x, y), "gradcosine", steps=4, lr=0.05, seed=0,
                                          batch_size=64, micro_batches=micro, verbose=0))
    whole, micro = reports
    assert any("micro-batches: 4" in n for n in micro.notes)
    scales = [np.array([t["scale"] for t in r.tensors]) for r in reports]
    assert np.any(np.abs(scales[0] - 1) > 1e-3)  # the run moved the scales
    np.testing.assert_allclose(scales[1], scales[0], rtol=1e-5)


def test_micro_batches_must_divide_the_batch():
    model = _model("float32")
    x = np.zeros((30, 6), "float32")
    with pytest.raises(ValueError, match="multiple of 4"):
        km.meta_initialize(model, (x, np.zeros(30, "int64")), steps=1, batch_size=30,
                           micro_batches=4, verbose=0, method="metainit")
    with pytest.raises(ValueError, match="micro_batches"):
        km.meta_initialize(model, None, steps=1, micro_batches=0, verbose=0, method="metainit")


def test_an_objective_without_totals_cannot_be_split():
    batch = (tf.ones([8, 2]), tf.zeros([8]))

    def local_only(s, shards_):  # a mean over its own part only: wrong once the batch is split
        return tf.reduce_mean(shards_[0].batch[0]) * s[0], tf.constant(False), {}

    s = tf.ones([1])
    assert float(shards.values(local_only, s, shards.split((batch,), 1), 8)[0]) == 1.0
    with pytest.raises(ValueError, match="no `shard.total` call"):
        shards.values(local_only, s, shards.split((batch,), 2), 8)
