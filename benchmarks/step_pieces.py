"""Where a learned step's time goes: its pieces timed one by one, in one process.

For the 8×256 MLP or the 4×32 CNN of ``step_cost.py`` (batch 128), each piece is a compiled
``tf.function`` over the same loss function the runner uses (``make_loss_fn``), timed in
interleaved rounds (every piece once per round, the median over rounds), so a slow spell of a
shared machine falls on every piece alike. Pieces:

- ``training step``: ``model.train_on_batch`` (SGD), the reference of ``step_cost.py``;
- ``gradient``: the mean loss's gradient (one forward and one backward pass);
- ``2nd order, whole batch``: the scale gradient of ‖g‖ (g on the whole batch; GradInit's kind
  of derivative);
- ``2nd order, one chunk``: the same on GradCosine's largest chunk alone;
- ``GradInit``: its objective (the gradient-norm constraint and the look-ahead loss, one picked
  with ``where``, so both are differentiated) and its scale gradient; and the look-ahead path
  alone, what a look-ahead step would cost if only the picked value were differentiated;
- ``4 chunks, norms only``: the scale gradient of Σ‖g_i‖ over GradCosine's four chunks;
- ``GradCosine``: ``objectives.grad_cosine``'s released target (−GC − Σ‖g_i‖) and its scale
  gradient;
- ``GQ value`` and ``GQ + scale gradient``: MetaInit's objective (g and Hg), and with its third-order
  scale gradient; the same with the finite-difference ``Hg`` (``hvp="finite_difference"``, a
  second-order scale gradient).

Usage: python benchmarks/step_pieces.py [--model mlp|cnn] [--rounds 8] [--json PATH]
Writes ``benchmarks/results/step_pieces_<model>.json`` (``--json``) and prints its table
(``render.py``'s).
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import record  # noqa: E402
import render  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_metainit import methods, objectives  # noqa: E402
from keras_metainit.experiments import data, models  # noqa: E402
from keras_metainit.experiments.training import CE  # noqa: E402
from keras_metainit.learned.core import scaled  # noqa: E402
from keras_metainit.losses import resolve_loss  # noqa: E402
from keras_metainit.model_fn import make_loss_fn  # noqa: E402


MODELS = {"mlp": lambda: models.mlp(8, 256, seed=0), "cnn": lambda: models.cnn(4, 32, seed=0)}


def pieces(name, x, y):
    """``{name: callable}``: each piece, compiled, at scales 1."""
    model = MODELS[name]()
    model.predict(x[:8], verbose=0)
    spec = resolve_loss(model, CE, x, y)
    loss_fn = make_loss_fn(model, spec, training=True)
    weights = [v.value for v in model.trainable_variables]
    every = list(range(len(weights)))
    s = tf.ones([len(weights)])
    batch = (x, y)
    lo, hi = max(objectives.chunk_bounds(len(x)), key=lambda b: b[1] - b[0])

    def scale_grad(objective):
        @tf.function
        def f(s):
            with tf.GradientTape() as tape:
                tape.watch(s)
                value = objective(scaled(weights, every, s))
            return value, tape.gradient(value, s)
        return lambda: f(s)

    def norm_of_gradient(part):
        def objective(p):
            _, g = objectives.gradient(loss_fn, p, part)
            return objectives.gradient_norm(g)
        return objective

    def chunk_norms(p):
        chunks = objectives.chunk_bounds(len(x))
        return tf.add_n([norm_of_gradient((x[a:b], y[a:b]))(p) for a, b in chunks])

    def gc_target(p):
        gc, _, norms, _ = objectives.grad_cosine(loss_fn, p, batch, 4, 0.2, True)
        return -gc - tf.reduce_sum(norms)

    gradinit = methods.GradInit()

    def gradinit_value(p):  # the constraint and the look-ahead loss, one picked with `where`
        return gradinit.objective(loss_fn, p, (batch, batch))[0]

    def lookahead_only(p):  # the look-ahead path alone (its direction is held constant anyway)
        _, g = objectives.gradient(loss_fn, p, batch)
        return objectives.lookahead_loss(loss_fn, p, [tf.stop_gradient(t) for t in g], batch)

    gradient = tf.function(lambda s: objectives.gradient(loss_fn, scaled(weights, every, s),
                                                         batch)[1])
    gq_value = tf.function(lambda s: objectives.gradient_quotient(
        loss_fn, scaled(weights, every, s), batch, 1e-2)[0])
    gq_value_fd = tf.function(lambda s: objectives.gradient_quotient(
        loss_fn, scaled(weights, every, s), batch, 1e-2, hvp="finite_difference")[0])
    trainee = MODELS[name]()  # the same model, trained (its weights change)
    trainee.compile("sgd", CE)
    return {
        "training step": lambda: trainee.train_on_batch(x, y),
        "gradient": lambda: gradient(s),
        "2nd order, whole batch": scale_grad(norm_of_gradient(batch)),
        f"2nd order, one chunk ({hi - lo} examples)": scale_grad(
            norm_of_gradient((x[lo:hi], y[lo:hi]))),
        "GradInit (constraint and look-ahead loss, `where`)": scale_grad(gradinit_value),
        "GradInit's look-ahead path alone": scale_grad(lookahead_only),
        "4 chunks, norms only": scale_grad(chunk_norms),
        "GradCosine (target + scale gradient)": scale_grad(gc_target),
        "GQ value (g and Hg)": lambda: gq_value(s),
        "GQ + scale gradient (MetaInit)": scale_grad(
            lambda p: objectives.gradient_quotient(loss_fn, p, batch, 1e-2)[0]),
        "GQ value, finite-difference Hg": lambda: gq_value_fd(s),
        "GQ + scale gradient (MetaInit, finite difference)": scale_grad(
            lambda p: objectives.gradient_quotient(loss_fn, p, batch, 1e-2,
                                                   hvp="finite_difference")[0]),
    }


def interleaved(fns, rounds: int, calls: int):
    """``(first call s, ms per round)`` per piece: each piece traced and warmed up, then timed
    ``calls`` times in each of ``rounds`` rounds, every piece once per round."""
    first = {}
    for name, fn in fns.items():  # trace and warm up
        t = time.perf_counter()
        np.asarray(tf.nest.flatten(fn())[0])
        first[name] = time.perf_counter() - t
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(calls):
                out = fn()
            np.asarray(tf.nest.flatten(out)[0])  # wait for the result
            times[name].append((time.perf_counter() - t) / calls * 1e3)
    return first, times


def main():
    tf.get_logger().setLevel("ERROR")  # the loss function is traced once per chunk size
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=list(MODELS), default="mlp")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--calls", type=int, default=10, help="calls per piece per round")
    record.add_argument(p, "step_pieces_<model>")
    args = p.parse_args()
    (x, y), _, _ = data.fashion_mnist("small", standardize=False)
    x, y = tf.constant(x[:128]), tf.constant(y[:128])
    _, times = interleaved(pieces(args.model, x, y), args.rounds, args.calls)
    print(f"{args.model}, batch 128: median ms over {args.rounds} interleaved rounds")
    payload = record.write(record.path_for(args, f"step_pieces_{args.model}"), {
        "model": args.model, "rounds": args.rounds, "calls": args.calls, "times_ms": times})
    print(render.render_step_pieces(payload))


if __name__ == "__main__":
    main()
