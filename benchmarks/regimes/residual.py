"""Regime 3: residual nets without normalization.

Residual MLPs (``keras_metainit.experiments.models.residual_mlp``: a Dense stem, blocks
``relu(h + Dense(relu(Dense(h))))``, no normalization) of 20 and 50 blocks, trained with SGD at
Fixup's rate (0.1, momentum 0.9), no clipping, no warmup, on the full Fashion-MNIST. With a
standard init the residual stream grows block by block; Fixup (Zhang et al. 2019) rescales the
branches analytically, MetaInit (Dauphin & Schoenholz 2019) learns the scales.
"""
from keras_metainit.experiments import contenders as C
from keras_metainit.experiments import data, models
from keras_metainit.experiments.runner import Claim, Table
from keras_metainit.experiments.training import Budget

KEY = "residual"
NUMBER = 3
TITLE = "Residual nets without normalization"
CLAIM = ("Fixup and MetaInit: deep residual nets train without normalization from the right "
         "initialization; from a standard one the residual stream grows with depth.")

FULL = dict(subset="auto", train_size=None, test_size=None, blocks=(20, 50), width=64,
            steps=300, batch=128, lr=0.1, metainit_steps=20, gradinit_steps=20)
QUICK = dict(FULL, subset="small", train_size=1024, test_size=512, blocks=(4,), width=16,
             steps=20, metainit_steps=2, gradinit_steps=2, keep=("He", "Fixup", "GradInit"))

ANALYTIC = ["Keras default", "He", "AnyInit (empirical)"]


def rows(cfg):
    return [C.keras_default(), C.he(), *C.anyinit(), C.fixup(), C.suite("lsuv"),
            C.suite("metainit", steps=cfg["metainit_steps"]),
            C.suite("gradinit", steps=cfg["gradinit_steps"])]


def tables(quick: bool):
    cfg = QUICK if quick else FULL
    train, test, subset = data.fashion_mnist(cfg["subset"], train_size=cfg["train_size"],
                                             test_size=cfg["test_size"])
    budget = Budget("sgd", cfg["lr"], momentum=0.9, batch_size=cfg["batch"], steps=cfg["steps"])
    out = []
    for blocks in cfg["blocks"]:
        r = C.keep(rows(cfg), cfg.get("keep"))
        out.append(Table(
            key=f"resmlp_{blocks}",
            title=(f"residual MLP, {blocks} blocks of width {cfg['width']}, no normalization, "
                   f"Fashion-MNIST {subset}"),
            build=models.residual_mlp, arguments={"blocks": blocks, "width": cfg["width"]},
            data=(train, test), budget=budget, contenders=r,
            claims=[Claim("a suite method beats every analytic init",
                          [c.name for c in r if c.kind == "suite"], ANALYTIC),
                    Claim("a suite method beats Fixup",
                          [c.name for c in r if c.kind == "suite"], ["Fixup"])]))
    return out
