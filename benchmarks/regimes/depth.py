"""Regime 4: depth and activation.

Plain MLPs (``keras_metainit.experiments.models.mlp``, width 32, no normalization) of depth 10,
20, 50 and 100 with ReLU, GELU, tanh and SiLU, where He's formula (derived for ReLU) is not the
right one for every activation and a data-driven (LSUV) or learned (MetaInit) scale should be.
Each contender is trained 300 steps at its best SGD rate (momentum 0.9) of a small grid, chosen
on the first seed; the sweep is kept in the results. MetaInit runs up to depth 20: from Keras's
default at depth 50 the ReLU net's outputs no longer depend on its input, MetaInit says so and
leaves it (LSUV is the method there).
"""
from keras_metainit.experiments import contenders as C
from keras_metainit.experiments import data, models
from keras_metainit.experiments.runner import Claim, Table
from keras_metainit.experiments.training import Budget

KEY = "depth"
NUMBER = 4
TITLE = "Depth and activation sweep"
CLAIM = ("Where He's formula does not fit the activation (GELU, tanh, SiLU) or the net is very "
         "deep, a data-driven or learned scale trains where the analytic ones do not.")

FULL = dict(subset="auto", train_size=None, test_size=2000, depths=(10, 20, 50, 100),
            activations=("relu", "gelu", "tanh", "silu"), width=32, steps=300, batch=128,
            lrs=(0.003, 0.01, 0.03, 0.1), metainit_steps=20, metainit_max_depth=20)
QUICK = dict(FULL, subset="small", train_size=1024, test_size=512, depths=(3,),
             activations=("relu", "tanh"), width=8, steps=10, metainit_steps=2,
             keep=("Keras default", "He", "LSUV", "MetaInit"))

ANALYTIC = ["Keras default", "He", "AnyInit (empirical)"]


def rows(cfg, depth):
    out = [C.keras_default(), C.he(), *C.anyinit(), C.suite("lsuv")]
    if depth <= cfg["metainit_max_depth"]:
        out.append(C.suite("metainit", steps=cfg["metainit_steps"]))
    return out


def tables(quick: bool):
    cfg = QUICK if quick else FULL
    train, test, subset = data.fashion_mnist(cfg["subset"], train_size=cfg["train_size"],
                                             test_size=cfg["test_size"])
    budget = Budget("sgd", cfg["lrs"][0], momentum=0.9, batch_size=cfg["batch"],
                    steps=cfg["steps"])
    out = []
    for depth in cfg["depths"]:
        for act in cfg["activations"]:
            r = C.keep(rows(cfg, depth), cfg.get("keep"))
            out.append(Table(
                key=f"mlp{depth}_{act}",
                title=f"plain {act} MLP {depth}x{cfg['width']}, Fashion-MNIST {subset}",
                build=models.mlp,
                arguments={"depth": depth, "width": cfg["width"], "activation": act},
                data=(train, test), budget=budget, contenders=r, lrs=cfg["lrs"],
                claims=[Claim("a suite method beats every analytic init",
                              [c.name for c in r if c.kind == "suite"], ANALYTIC)]))
    return out
