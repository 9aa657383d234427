"""Data-driven initialization with Sylvester solvers (Das, Bhalgat & Porikli, 2021).

Layer by layer, each kernel W solves the Sylvester equation of an encoding plus decoding loss on
the layer's own input activations X and a latent code S,

    min_W ||X - W^T S||^2 + lam ||W X - S||^2  <=>  (S S^T) W + W (lam X X^T) = (1 + lam) S X^T,

and is then rescaled to unit pre-activation variance. Two uses:

1. A 20-layer, width-128 plain ReLU MLP built with Keras's default `glorot_uniform`, initialized
   with `method="sylvester"` (orthogonal latent code) on the training data, then trained for
   2 epochs of SGD (0.01, momentum 0.9, batch 128) next to the Keras default.
2. Few-shot: 10 labelled images per class (100 in all), an MLP 784-256-128-10 initialized with
   `Sylvester(latent="labels")` (unit j codes class j mod 10), then fine-tuned for 30 epochs of
   Adam 1e-3 (batch 32) next to Glorot; accuracy on the 2,000 test images before and after.

Run:  python examples/sylvester.py
(KERAS_METAINIT_EXAMPLES_QUICK=1 runs a tiny version, for the tests.)
"""
import os

import keras
import numpy as np

import keras_metainit
from keras_metainit.experiments import data, models, training
from keras_metainit.methods import Sylvester

QUICK = os.environ.get("KERAS_METAINIT_EXAMPLES_QUICK") == "1"
DEPTH, EPOCHS, FINE_TUNE_EPOCHS, N_TRAIN = (4, 1, 3, 512) if QUICK else (20, 2, 30, 6000)

# the bundled Fashion-MNIST subset as vectors, standardized with the training statistics
(x_train, y_train), (x_test, y_test), _ = data.fashion_mnist("small", flatten=True,
                                                             train_size=N_TRAIN)


def accuracy(model):
    return training.accuracy(model.predict(x_test, verbose=0), y_test)


# ---- 1. a deep plain MLP, orthogonal latent code --------------------------------------------
def mlp():
    """DEPTH ReLU Dense layers of 128 units, 10 logits, Keras's default init (seed 0)."""
    return models.mlp(DEPTH, 128, kernel_initializer="glorot_uniform", input_shape=(784,),
                      seed=0)


def train(model):
    """SGD 0.01, momentum 0.9, batch 128 (the harness's training loop); test accuracy."""
    budget = training.Budget("sgd", 0.01, epochs=EPOCHS)
    return training.train(model, (x_train, y_train), (x_test, y_test), budget).test_acc


model = mlp()
report = model.meta_initialize((x_train, y_train), method="sylvester", seed=0, verbose=0)
print(f"Sylvester (orthogonal code) on {report.data}: {len(report.layers)} layers in "
      f"{report.wall_time:.1f} s")
print("  layer      samples  residual  var before -> after")
for row in report.layers:
    print(f"  {row['name']:9s}  {row['samples']:7d}  {row['residual']:8.1e}  "
          f"{row['var_before']:10.3g} -> {row['var_after']:.3f}")
deep = {"Sylvester": train(model), "Keras default": train(mlp())}
print(f"{DEPTH}-layer MLP, test accuracy after {EPOCHS} epoch(s) of SGD: "
      + ", ".join(f"{name} {acc:.3f}" for name, acc in deep.items()))

# ---- 2. few-shot: 10 labelled images per class, latent code from the labels -----------------
few = np.concatenate([np.flatnonzero(y_train == c)[:10] for c in range(10)])
x_few, y_few = x_train[few], y_train[few]


def small_mlp():
    return keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
                             keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])


def fine_tune(model):
    budget = training.Budget("adam", 1e-3, batch_size=32, epochs=FINE_TUNE_EPOCHS)
    return training.train(model, (x_few, y_few), (x_test, y_test), budget).test_acc


keras.utils.set_random_seed(0)
model = small_mlp()
keras_metainit.meta_initialize(model, (x_few, y_few), method=Sylvester(latent="labels", lam=1.0),
                               seed=0, verbose=0)
few_shot = {"Sylvester (labels), before fine-tuning": accuracy(model),
            "Sylvester (labels), fine-tuned": fine_tune(model)}
keras.utils.set_random_seed(0)
few_shot["Glorot, fine-tuned"] = fine_tune(small_mlp())
print(f"\nfew-shot ({len(x_few)} labelled images), test accuracy, "
      f"{FINE_TUNE_EPOCHS} epochs of Adam:")
for name, acc in few_shot.items():
    print(f"  {name:38s} {acc:.3f}")
