"""scale_opt.py: sign_momentum and rescale_adam against float64 NumPy written out by hand."""
import numpy as np
import pytest
import tensorflow as tf

from keras_metainit import scale_opt


def _tf(a):
    return tf.constant(a, tf.float64)


def _sign_momentum_reference(grads, base, lr, momentum, min_norm):
    """MetaInit's update on the norms, step by step: m ← μm − lr·sign(g), ‖W‖ ← max(‖W‖ + m,
    floor); returns the scale (‖W‖ / ‖W⁰‖) after every step."""
    norms, m, out = base.copy(), np.zeros_like(base), []
    for g in grads:
        m = momentum * m - lr * np.sign(g)
        norms = np.maximum(norms + m, min_norm * base)
        out.append(norms / base)
    return out


def _rescale_adam_reference(grads, flags, scales, lr, b1, b2, eps, min_scale, clip):
    """RescaleAdam step by step as the authors' code has it: a first moment and a step count per
    kind of step (objective / constraint), one second moment that every step updates,
    bias-corrected by the steps of both kinds."""
    first = {False: [0.0, 0], True: [0.0, 0]}
    v, out = 0.0, []
    for g, c in zip(grads, flags):
        g = g if clip is None else np.clip(g, -clip, clip)
        m, t = first[c]
        t += 1
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        total = first[not c][1] + t
        step = lr / (1 - b1 ** t) * m / (np.sqrt(v / (1 - b2 ** total)) + eps)
        first[c] = [m, t]
        scales = np.maximum(scales - step, min_scale)
        out.append(scales)
    return out, first, v


def test_sign_momentum_matches_the_reference_over_several_steps():
    rng = np.random.default_rng(0)
    base = np.array([0.5, 2.0, 7.0])
    grads = [rng.normal(size=3) for _ in range(6)]
    t = scale_opt.sign_momentum(lr=0.1, momentum=0.9, min_norm=1e-3)
    s = _tf(np.ones(3))
    state = t.init(s, _tf(base))
    for g, want in zip(grads, _sign_momentum_reference(grads, base, 0.1, 0.9, 1e-3)):
        s, state = t.update(_tf(g), state, s, _tf(base))
        np.testing.assert_allclose(s.numpy(), want, rtol=1e-12)


def test_sign_momentum_floors_the_norm():
    base = np.array([0.25, 10.0])
    grads = [np.array([1.0, 1.0])] * 5  # always shrink: 0.25 hits the floor, 10 does not
    t = scale_opt.sign_momentum(lr=0.1, momentum=0.9, min_norm=0.2)
    s = _tf(np.ones(2))
    state = t.init(s, _tf(base))
    for g, want in zip(grads, _sign_momentum_reference(grads, base, 0.1, 0.9, 0.2)):
        s, state = t.update(_tf(g), state, s, _tf(base))
        np.testing.assert_allclose(s.numpy(), want, rtol=1e-12)
    assert s.numpy()[0] == pytest.approx(0.2) and 0.2 < s.numpy()[1] < 1.0


@pytest.mark.parametrize("clip", [1.0, None])
def test_rescale_adam_matches_the_reference(clip):
    rng = np.random.default_rng(1)
    grads = [rng.normal(scale=2.0, size=4) for _ in range(7)]
    flags = [False, True, False, False, True, True, False]
    start = np.array([1.0, 0.5, 2.0, 0.05])
    want, first, v = _rescale_adam_reference(grads, flags, start, 0.05, 0.9, 0.999, 1e-8,
                                              0.01, clip)
    t = scale_opt.rescale_adam(lr=0.05, min_scale=0.01, clip=clip)
    s = _tf(start)
    state = t.init(s, _tf(np.ones(4)))
    for g, c, w in zip(grads, flags, want):
        s, state = t.update(_tf(g), state, s, _tf(np.ones(4)), tf.constant(c))
        np.testing.assert_allclose(s.numpy(), w, rtol=1e-10)
    # each kind of step keeps its first moment and count; the second moment is shared
    np.testing.assert_allclose(state["m"].numpy(), first[False][0], rtol=1e-10)
    np.testing.assert_allclose(state["cm"].numpy(), first[True][0], rtol=1e-10)
    np.testing.assert_allclose(state["v"].numpy(), v, rtol=1e-10)
    assert (float(state["t"]), float(state["ct"])) == (4, 3)


def test_rescale_adam_floors_the_scales():
    t = scale_opt.rescale_adam(lr=0.3, min_scale=0.25)
    s = _tf([0.5, 3.0])
    state = t.init(s, _tf([1.0, 1.0]))
    for _ in range(3):  # every step moves a scale by lr: 0.5 reaches the floor
        s, state = t.update(_tf([1.0, 1.0]), state, s, _tf([1.0, 1.0]), tf.constant(False))
    np.testing.assert_allclose(s.numpy(), [0.25, 3.0 - 0.9], rtol=1e-7)  # ε of Adam


def test_a_constraint_step_leaves_the_objective_first_moment_alone():
    t = scale_opt.rescale_adam(lr=0.1)
    s = _tf([1.0, 1.0])
    state = t.init(s, _tf([1.0, 1.0]))
    s, state = t.update(_tf([0.3, -0.2]), state, s, _tf([1.0, 1.0]), tf.constant(False))
    kept = {k: state[k].numpy().copy() for k in ("m", "t")}
    _, after = t.update(_tf([-0.9, 0.7]), state, s, _tf([1.0, 1.0]), tf.constant(True))
    for k, v in kept.items():
        np.testing.assert_array_equal(after[k].numpy(), v)
    assert float(after["ct"]) == 1
    np.testing.assert_allclose(after["cm"].numpy(), 0.1 * np.array([-0.9, 0.7]), rtol=1e-12)
    # the second moment is shared: the constraint step's gradient enters it
    np.testing.assert_allclose(after["v"].numpy(), 0.999 * 0.001 * np.array([0.09, 0.04])
                               + 0.001 * np.array([0.81, 0.49]), rtol=1e-12)


def test_normalized_rescale_adam_is_invariant_to_each_scales_gradient_size():
    """With normalize=True a scale whose gradients are 1e-20·g moves exactly as one whose
    gradients are g (Adam's epsilon no longer swallows them), whatever the other scales'
    magnitudes; without it the vanished one barely moves."""
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=3) for _ in range(5)]
    sizes = np.array([1e-20, 1.0, 1e3])
    base = _tf(np.ones(3))

    def run(normalize, factor):
        t = scale_opt.rescale_adam(lr=0.1, normalize=normalize)
        s = _tf(np.ones(3))
        state = t.init(s, base)
        for g in grads:
            s, state = t.update(_tf(g * factor), state, s, base)
        return s.numpy()

    same = run(True, np.ones(3))
    np.testing.assert_allclose(run(True, sizes), same, rtol=1e-9)
    plain = run(False, sizes)
    assert abs(plain[0] - 1.0) < 1e-9 and abs(same[0] - 1.0) > 0.1
    zero = scale_opt.rescale_adam(lr=0.1, normalize=True)
    s, _ = zero.update(_tf(np.zeros(3)), zero.init(base, base), base, base)
    np.testing.assert_array_equal(s.numpy(), np.ones(3))


def test_relative_sign_momentum_multiplies_each_norm_by_exp_m():
    """step="relative": m ← μm − lr·sign(g), s ← max(s·exp(m), floor), written out in float64;
    a small and a large norm move by the same factor."""
    rng = np.random.default_rng(1)
    base = np.array([0.2, 20.0])
    t = scale_opt.sign_momentum(lr=0.05, momentum=0.9, min_norm=1e-3, relative=True)
    s, m = _tf(np.ones(2)), np.zeros(2)
    want = np.ones(2)
    state = t.init(s, _tf(base))
    for _ in range(6):
        g = np.repeat(rng.normal(size=1), 2)  # same sign for both tensors
        m = 0.9 * m - 0.05 * np.sign(g)
        want = np.maximum(want * np.exp(m), 1e-3)
        s, state = t.update(_tf(g), state, s, _tf(base))
        np.testing.assert_allclose(s.numpy(), want, rtol=1e-12)
    assert s.numpy()[0] == pytest.approx(s.numpy()[1])
