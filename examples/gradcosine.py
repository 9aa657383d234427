"""GradCosine (NIO): rescale the kernels of a deep plain MLP so that sample gradients agree.

Keras's default initializer (`glorot_uniform`) is made for tanh-like units: in a 20-layer,
width-128 plain ReLU MLP it halves the signal's variance at every layer and the net barely trains.
`model.meta_initialize((x, y), method="gradcosine")` (NIO, Yang et al., 2022; alias "nio")
learns one scale per kernel on the real training data: it raises GradCosine, the mean cosine
between the gradients of overlapping chunks of a batch, together with their norms, under a bound
on the mean gradient norm GN, with RescaleAdam steps on the scales. The script prints the report's
GradCosine (gc), GN (gn) and loss before -> after and the scales, then the test accuracy after
2 epochs of SGD (0.01, momentum 0.9, batch 128) for the rescaled net, the untouched Keras
default and He-normal.

Like GradInit, its steps follow the size of the gradient: it cannot repair a start whose
gradients have vanished (the x0.1 He start of regime 5, `benchmarks/regimes.py`: see
docs/methods/gradcosine.md).

Run:  python examples/gradcosine.py
(KERAS_METAINIT_EXAMPLES_QUICK=1 runs a tiny version, for the tests.)
"""
import os

import keras_metainit  # noqa: F401  (adds model.meta_initialize to every keras.Model)
from keras_metainit.experiments import data, models, training

QUICK = os.environ.get("KERAS_METAINIT_EXAMPLES_QUICK") == "1"
DEPTH, STEPS, EPOCHS, N_TRAIN = (4, 5, 1, 1024) if QUICK else (20, 50, 2, 6000)

# the bundled Fashion-MNIST subset, standardized with the training statistics
(x_train, y_train), (x_test, y_test), _ = data.fashion_mnist("small", train_size=N_TRAIN)

# DEPTH ReLU Dense layers of 128 units and 10 logits (the harness's plain MLP), Keras's default
model = models.mlp(DEPTH, 128, kernel_initializer="glorot_uniform", seed=0)
# lr is RescaleAdam's rate on the scales (the method's default is 1e-2; 0.1 here).
# The method object gives access to every option: methods.GradCosine(splits=4, gamma=10, ...).
report = model.meta_initialize((x_train, y_train), method="gradcosine", steps=STEPS, lr=0.1,
                               seed=0, verbose=0)
print(f"GradCosine: {report.steps_run} steps on {report.data} ({report.constraint_steps} of "
      f"them reduced GN), {report.wall_time:.1f} s")
for metric in report.before:  # measured on the same batch, before and after
    print(f"  {metric}: {report.before[metric]:.4g} -> {report.after[metric]:.4g}")
print(f"  end-to-end gain vs He: {report.end_to_end_gain['before']:.3g} -> "
      f"{report.end_to_end_gain['after']:.3g}")
print("  scale per kernel: " + " ".join(f"{s:.2f}" for s in report.scales.values()))
# print(report) shows everything, with one row per tensor

# the same budget for each: SGD 0.01, momentum 0.9, batch 128 (the harness's training loop)
accuracy = training.accuracies(
    {"GradCosine": model,
     "Keras default": models.mlp(DEPTH, 128, kernel_initializer="glorot_uniform", seed=0),
     "He": models.mlp(DEPTH, 128, seed=0)},
    (x_train, y_train), (x_test, y_test), training.Budget("sgd", 0.01, epochs=EPOCHS))
