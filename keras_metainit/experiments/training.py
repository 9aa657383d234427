"""The one training loop of the experiments: a :class:`Budget` (optimizer, rate, warmup,
clipping, epochs or steps), :func:`train` (fit, record every step's loss, evaluate) and the
divergence rule :func:`diverged`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np

from keras_metainit.validation import check

__all__ = ["Budget", "RunResult", "WarmupRate", "make_optimizer", "set_rate", "train",
           "fit_and_evaluate", "Trainer", "accuracies", "diverged", "accuracy", "StepLosses",
           "CE"]

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@dataclass(frozen=True)
class Budget:
    """What every contender of a table is trained with.

    Attributes:
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"``.
        lr: the learning rate (after warmup).
        momentum: SGD's momentum.
        batch_size: examples per step.
        epochs: passes over the training set (used when ``steps`` is None).
        steps: optimizer steps (over as many shuffled passes as they need); overrides ``epochs``.
        warmup: warmup from ~0 to ``lr`` over this many steps (0 or 1: none).
        warmup_power: the warmup's shape, ``lr * ((step + 1) / warmup) ** power``: 1 linear,
            2 quadratic (Arpit et al.'s, :class:`keras_metainit.QuadraticWarmup`).
        clipnorm: clip each gradient tensor's norm (Keras's ``clipnorm``).
        global_clipnorm: clip the global gradient norm (PyTorch's ``clip_grad_norm_``, what
            GradInit's ``--train-clip`` does).
    """

    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    batch_size: int = 128
    epochs: int = 1
    steps: Optional[int] = None
    warmup: int = 0
    warmup_power: float = 1.0
    clipnorm: Optional[float] = None
    global_clipnorm: Optional[float] = None

    def __post_init__(self):
        check(self.optimizer in ("sgd", "adam"), "optimizer", self.optimizer, "'sgd' or 'adam'")
        check(self.lr > 0, "lr", self.lr, "positive")

    def replace(self, **changes: Any) -> "Budget":
        """A copy with ``changes``."""
        return replace(self, **changes)

    def describe(self) -> str:
        """The budget in a few words, for table titles."""
        opt = (f"SGD {self.lr:g} momentum {self.momentum:g}" if self.optimizer == "sgd"
               else f"Adam {self.lr:g}")
        length = f"{self.steps} steps" if self.steps else f"{self.epochs} epoch(s)"
        extras = [f"batch {self.batch_size}", length]
        if self.warmup > 1:
            shape = {1.0: "linear", 2.0: "quadratic"}.get(self.warmup_power,
                                                          f"power {self.warmup_power:g}")
            extras.append(f"{self.warmup}-step {shape} warmup")
        if self.clipnorm:
            extras.append(f"clipnorm {self.clipnorm:g}")
        if self.global_clipnorm:
            extras.append(f"global clipnorm {self.global_clipnorm:g}")
        return f"{opt}, " + ", ".join(extras)


@keras.saving.register_keras_serializable(package="keras_metainit")
class WarmupRate(keras.optimizers.schedules.LearningRateSchedule):
    """A warmup, ``lr * min(1, (step + 1) / warmup) ** power``, whose rate, length and shape are
    variables: a compiled model is trained again at another rate or warmup without tracing again
    (:func:`set_rate`). ``warmup`` 1 is a constant rate.

    Args:
        lr: the rate after warmup.
        warmup: steps of the warmup (>= 1).
        power: 1 linear, 2 quadratic.
    """

    def __init__(self, lr: float = 0.01, warmup: int = 1, power: float = 1.0):
        self.lr = keras.Variable(float(lr), trainable=False, name="warmup_rate_lr")
        self.warmup = keras.Variable(float(max(warmup, 1)), trainable=False,
                                     name="warmup_rate_steps")
        self.power = keras.Variable(float(power), trainable=False, name="warmup_rate_power")

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        return self.lr * keras.ops.power(keras.ops.minimum(1.0, (step + 1.0) / self.warmup),
                                         self.power)

    def get_config(self) -> Dict[str, Any]:
        value = lambda v: float(keras.ops.convert_to_numpy(v))  # noqa: E731
        return {"lr": value(self.lr), "warmup": int(value(self.warmup)),
                "power": value(self.power)}


def make_optimizer(budget: Budget) -> keras.optimizers.Optimizer:
    """The budget's optimizer: its rate a :class:`WarmupRate`, its clipping."""
    rate = WarmupRate(budget.lr, budget.warmup, budget.warmup_power)
    clip = {"clipnorm": budget.clipnorm, "global_clipnorm": budget.global_clipnorm}
    if budget.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=budget.momentum, **clip)
    return keras.optimizers.Adam(rate, **clip)


def set_rate(optimizer: keras.optimizers.Optimizer, budget: Budget) -> None:
    """Start ``optimizer`` (from :func:`make_optimizer`) afresh for ``budget``: every slot and the
    step counter at zero, the rate and the warmup of ``budget``."""
    for v in optimizer.variables:
        v.assign(keras.ops.zeros(v.shape, v.dtype))
    rate = optimizer._learning_rate  # the WarmupRate
    rate.lr.assign(float(budget.lr))
    rate.warmup.assign(float(max(budget.warmup, 1)))
    rate.power.assign(float(budget.warmup_power))


def diverged(losses: Sequence[float], tail: int = 10, tolerance: float = 0.01) -> bool:
    """Whether a run diverged: a non-finite loss at any step, or the mean loss of its last
    ``tail`` steps above its first step's loss by more than ``tolerance`` of it (a run stalled
    at its start, flat up to rounding, has not diverged).

    Args:
        losses: the training loss of every step, in order.
        tail: how many last steps are averaged.
        tolerance: the relative margin above the first step's loss.

    Returns:
        True for a diverged run (an empty run has not diverged).

    Examples:
        >>> diverged([2.3, 1.0, float("nan")]), diverged([2.3, 5.0, 6.0]), diverged([2.3, 0.5])
        (True, True, False)
        >>> diverged([2.302585, 2.302590, 2.302601])  # stalled at chance
        False
    """
    a = np.asarray(losses, float)
    if a.size == 0:
        return False
    if not np.isfinite(a).all():
        return True
    return bool(a[-tail:].mean() > a[0] + tolerance * abs(a[0]))


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of correct argmax predictions (per token for sequences); a prediction with a
    non-finite logit counts as wrong."""
    logits = np.asarray(logits)
    ok = np.isfinite(logits).all(axis=-1)
    return float(np.mean((np.argmax(np.nan_to_num(logits), axis=-1) == labels) & ok))


class StepLosses(keras.callbacks.Callback):
    """Records the training loss of every step (Keras logs the epoch's running mean; each step's
    loss is recovered from it) and stops training at the first non-finite loss."""

    def __init__(self):
        super().__init__()
        self.losses: List[float] = []
        self._seen, self._mean = 0, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._seen, self._mean = 0, 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = float((logs or {}).get("loss", math.nan))
        self._seen += 1
        self.losses.append(mean * self._seen - self._mean * (self._seen - 1))
        self._mean = mean
        if not math.isfinite(mean):
            self.model.stop_training = True


@dataclass
class RunResult:
    """One training run.

    Attributes:
        test_acc: accuracy on the test set (per token for sequences).
        test_loss: mean loss on the test set (NaN for a diverged net).
        train_loss: the mean loss of the last 10 steps.
        losses: every step's training loss.
        diverged: :func:`diverged` of ``losses``.
        seconds: wall time of fit and evaluation.
    """

    test_acc: float
    test_loss: float
    train_loss: float
    losses: List[float] = field(default_factory=list)
    diverged: bool = False
    seconds: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return {"test_acc": self.test_acc, "test_loss": self.test_loss,
                "train_loss": self.train_loss, "diverged": self.diverged,
                "seconds": self.seconds, "losses": self.losses}


def _repeat(arrays: Tuple[np.ndarray, ...], n: int, seed: int) -> Tuple[np.ndarray, ...]:
    """``n`` examples: shuffled passes over ``arrays`` (a different order each pass)."""
    size = len(arrays[0])
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(size) for _ in range(-(-n // size))])[:n]
    return tuple(a[order] for a in arrays)


def _key(budget: Budget) -> tuple:
    """What a compiled optimizer cannot change without tracing again."""
    return (budget.optimizer, budget.momentum, budget.clipnorm, budget.global_clipnorm)


def fit_and_evaluate(model: keras.Model, train_data: Tuple[np.ndarray, np.ndarray],
                     test_data: Tuple[np.ndarray, np.ndarray], budget: Budget, *,
                     loss: Any = CE, seed: int = 0) -> RunResult:
    """Train a model compiled with :func:`make_optimizer`'s optimizer (reset by
    :func:`set_rate` to ``budget``), then evaluate it: the loop of :func:`train`."""
    set_rate(model.optimizer, budget)
    record = StepLosses()
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    if budget.steps:
        x, y = _repeat(train_data, budget.steps * budget.batch_size, seed)
        model.fit(x, y, batch_size=budget.batch_size, epochs=1, shuffle=False, verbose=0,
                  callbacks=[record])
    else:
        model.fit(*train_data, batch_size=budget.batch_size, epochs=budget.epochs, shuffle=True,
                  verbose=0, callbacks=[record])
    logits = model.predict(test_data[0], batch_size=1024, verbose=0)
    seconds = time.perf_counter() - start
    acc = accuracy(logits, test_data[1])
    test_loss = float(keras.ops.convert_to_numpy(loss(test_data[1], logits)))
    losses = record.losses
    return RunResult(test_acc=acc, test_loss=test_loss,
                     train_loss=float(np.mean(losses[-10:])) if losses else math.nan,
                     losses=losses, diverged=diverged(losses), seconds=seconds)


def train(model: keras.Model, train_data: Tuple[np.ndarray, np.ndarray],
          test_data: Tuple[np.ndarray, np.ndarray], budget: Budget, *, loss: Any = CE,
          seed: int = 0) -> RunResult:
    """Compile ``model`` with the budget's optimizer, train it, evaluate it on ``test_data``.

    Args:
        model: a model that outputs logits (compiled again here).
        train_data: ``(x, y)`` NumPy arrays.
        test_data: ``(x, y)`` NumPy arrays.
        budget: optimizer, rate, warmup, clipping, epochs or steps.
        loss: the training loss (default sparse categorical cross-entropy from logits).
        seed: the order of the examples (``budget.steps``) and Keras's shuffling.

    Returns:
        A :class:`RunResult`; a run stops at its first non-finite loss and counts as diverged.

    Examples:
        >>> import numpy as np
        >>> from keras_metainit.experiments import models
        >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        >>> y = (x[:, 0] > 0).astype("int64")
        >>> run = train(models.mlp(2, 8, input_shape=(4,), classes=2, seed=0), (x, y), (x, y),
        ...             Budget("adam", 1e-2, batch_size=16, steps=8))
        >>> len(run.losses), 0.0 <= run.test_acc <= 1.0
        (8, True)
    """
    model.compile(make_optimizer(budget), loss)
    return fit_and_evaluate(model, train_data, test_data, budget, loss=loss, seed=seed)


#: Builder arguments that change a model's weights but not its graph.
_VALUE_ONLY = ("kernel_initializer", "output_initializer", "seed")


class Trainer:
    """:func:`train` with one compiled model per architecture and optimizer.

    Tracing a model's training step costs seconds to tens of seconds on a CPU (a 6-block
    Transformer: ~15 s of CPU), more than a short run itself. A ``Trainer`` compiles the first
    model of each architecture (the builder and its arguments but the initializers) and
    optimizer (kind, momentum, clipping), then trains every later model of that architecture
    by copying its weights into the compiled one and resetting the optimizer (:func:`set_rate`):
    the same run as a fresh ``compile`` (same weights, zero optimizer state, same batches),
    without tracing again.

    Examples:
        ```python
        import numpy as np
        from keras_metainit.experiments.models import mlp
        from keras_metainit.experiments.training import Budget, Trainer

        rng = np.random.default_rng(0)
        train = (rng.normal(size=(256, 8)).astype("float32"), rng.integers(0, 10, 256))
        test = (rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 10, 64))
        arguments = {"depth": 2, "width": 16, "input_shape": (8,)}
        trainer = Trainer()
        for seed in range(2):  # compiled once, trained twice
            model = mlp(**arguments, seed=seed)
            trainer.train(mlp, arguments, model, train, test, Budget(steps=4))
        ```
    """

    def __init__(self):
        self._compiled: Dict[tuple, keras.Model] = {}

    def train(self, build: Any, arguments: Dict[str, Any], model: keras.Model,
              train_data: Tuple[np.ndarray, np.ndarray], test_data: Tuple[np.ndarray, np.ndarray],
              budget: Budget, *, loss: Any = CE, seed: int = 0) -> RunResult:
        """Train ``model`` (built by ``build(**arguments)``, then initialized) as :func:`train`.

        Args:
            build: the builder ``model`` came from.
            arguments: its keyword arguments (the initializers and seed are ignored).
            model: as in :func:`train`.
            train_data: as in :func:`train`.
            test_data: as in :func:`train`.
            budget: as in :func:`train`.
            loss: as in :func:`train`.
            seed: as in :func:`train`.

        Returns:
            A :class:`RunResult`.
        """
        arch = sorted((k, repr(v)) for k, v in arguments.items() if k not in _VALUE_ONLY)
        key = (getattr(build, "__qualname__", repr(build)), repr(arch), _key(budget), id(loss))
        shapes = [tuple(w.shape) for w in model.weights]
        compiled = self._compiled.get(key)
        if compiled is None or [tuple(w.shape) for w in compiled.weights] != shapes:
            model.compile(make_optimizer(budget), loss)
            self._compiled[key] = compiled = model
        else:
            compiled.set_weights(model.get_weights())
        return fit_and_evaluate(compiled, train_data, test_data, budget, loss=loss, seed=seed)


def accuracies(named: Dict[str, keras.Model], train_data: Tuple[np.ndarray, np.ndarray],
               test_data: Tuple[np.ndarray, np.ndarray], budget: Budget, *,
               verbose: bool = True) -> Dict[str, float]:
    """Train each model of ``named`` with ``budget`` (:func:`train`, seed 0) and return its test
    accuracy by name; with ``verbose``, print them under the budget.

    Examples:
        ```python
        import numpy as np
        from keras_metainit.experiments.models import mlp
        from keras_metainit.experiments.training import Budget, accuracies

        rng = np.random.default_rng(0)
        train_data = (rng.normal(size=(256, 8)).astype("float32"), rng.integers(0, 10, 256))
        test_data = (rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 10, 64))
        accuracies({"He": mlp(2, 16, input_shape=(8,), seed=0)}, train_data, test_data,
                   Budget(steps=4))
        ```
    """
    out = {name: train(model, train_data, test_data, budget).test_acc
           for name, model in named.items()}
    if verbose:
        print(f"\ntest accuracy after {budget.describe()}:")
        for name, acc in out.items():
            print(f"  {name:16s} {acc:.3f}")
    return out
