"""Diagnostics: is this network ready to train? Gradient quotient, GradCosine and signal.

Three 20-layer, width-128 plain ReLU MLPs: He-normal (healthy), every kernel 0.1 x He-normal
(the signal vanishes) and 3 x He-normal (it explodes). For each, on one batch of 128 training
images, the script prints

- `keras_metainit.gradient_quotient(model, batch)`: MetaInit's objective, how much one gradient
  step changes the gradient (0: a locally linear landscape; large: a hard start);
- `keras_metainit.grad_cosine(model, batch)`: NIO's objective, the mean cosine between the
  gradients of overlapping chunks of the batch (gc), and their mean norm (gn);
- `keras_metainit.diagnose(model, batch)`: both, plus the RMS of every layer's output and the
  output/input RMS ratio, checked against `HealthLimits` (GQ <= 1000, ratio in [1e-3, 1e3]).

A vanished net has GQ close to 1 too (all its gradients are ~0), so GQ alone is not a health
score: `diagnose` also checks the signal. The same check runs on a saved model from the shell:
`keras-metainit diagnose MODEL.keras --fail-if-unhealthy` (exit status 1 when unhealthy).

Run:  python examples/diagnostics.py
(KERAS_METAINIT_EXAMPLES_QUICK=1 runs a tiny version, for the tests.)
"""
import os

import keras_metainit
from keras_metainit import HealthLimits, diagnose
from keras_metainit.experiments import data, models

QUICK = os.environ.get("KERAS_METAINIT_EXAMPLES_QUICK") == "1"
DEPTH = 4 if QUICK else 20

(x, y), _, _ = data.fashion_mnist("small", flatten=True)  # standardized
batch = (x[:128], y[:128])


def mlp(scale):
    """DEPTH ReLU Dense layers of 128 units and 10 logits (the harness's plain MLP, seed 0),
    He-normal kernels times `scale`."""
    return models.scale_kernels(models.mlp(DEPTH, 128, input_shape=(784,), seed=0), scale)


nets = {"He": mlp(1.0), "x0.1 He (vanishing)": mlp(0.1), "x3 He (exploding)": mlp(3.0)}

# The two objectives as standalone diagnostics
gq = keras_metainit.gradient_quotient(nets["He"], batch)
gc = keras_metainit.grad_cosine(nets["He"], batch)  # {"gc": ..., "gn": ...}
print(f"He: gradient_quotient {gq:.4g}; grad_cosine {gc['gc']:.3f} (gn {gc['gn']:.3g})")

# diagnose: both objectives, plus every layer's output RMS, checked against limits
limits = HealthLimits(max_gq=1e3, min_signal=1e-3, max_signal=1e3)  # the defaults
results = {}
for name, model in nets.items():
    result = results[name] = diagnose(model, batch, limits)
    print(f"\n{name}: GQ {result['gq']:.4g}, GradCosine {result['gc']:.3f} (GN {result['gn']:.3g}), "
          f"output/input RMS {result['signal_ratio']:.3g}")
    print("  layer output RMS: "
          + " ".join(f"{row['rms']:.2g}" for row in result["layers"][:: max(1, DEPTH // 5)]))
    print("  healthy" if result["healthy"] else "  UNHEALTHY: " + "; ".join(result["problems"]))
