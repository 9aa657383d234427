"""Regime 1: a large learning rate without normalization.

GradInit's setting (Zhu et al. 2021: VGG-19 without BN on CIFAR-10, SGD 0.1, momentum 0.9, batch
128, no warmup, gradient clipping at 1, ``--train-clip 1`` in the authors' launch script, which
clips the global norm) on the full Fashion-MNIST: a VGG-like CNN of 8 convolutions and a 20-layer
plain ReLU MLP, each from Keras's default init and every contender, against the same nets with
BatchNorm. GradInit runs with the paper's options for VGG (RescaleAdam lr 1e-2, η 0.1, γ 1,
minimum scale 0.01) for fewer iterations than its 390 (the budget). Both nets train three
epochs. The MLP runs a second time without the clipping (``mlp_noclip``), to see whether the
start decides where the launch script's clipping does not hold the steps back (it did not: every
init diverges or stays at chance there, docs/benchmarks.md).
"""
from keras_metainit.experiments import contenders as C
from keras_metainit.experiments import data, models
from keras_metainit.experiments.runner import Claim, Table
from keras_metainit.experiments.training import Budget

KEY = "high_lr"
NUMBER = 1
TITLE = "High learning rate, no normalization"
CLAIM = ("GradInit (and MetaInit): plain nets without normalization train stably at a large "
         "learning rate (SGD 0.1, clipping 1, no warmup) once initialized by the method; "
         "BatchNorm is the reference.")

# steps: three epochs of the full set (469 batches of 128); the CNN's (about 80 s a run on 2
# cores, 45 runs: 3777 s) alone take more than the hour the issue gives the full run
FULL = dict(subset="auto", train_size=None, test_size=None,
            steps={"vgg": 1410, "mlp": 1410, "mlp_noclip": 1410},
            batch=128, vgg=(8, 8, 16, 16, 32, 32, 32, 32), mlp=(20, 128), gradinit_steps=50,
            metainit_steps=20, gradcosine_steps=20)
QUICK = dict(FULL, subset="small", train_size=1024, test_size=512, steps={"vgg": 20, "mlp": 20},
             vgg=(4, 4, 4, 4, 8, 8, 8, 8), mlp=(6, 32), gradinit_steps=2, metainit_steps=2,
             gradcosine_steps=2, keep=("Keras default", "He", "LSUV", "BatchNorm"))

ANALYTIC = ["Keras default", "He", "AnyInit (empirical)"]


def rows(cfg):
    gradinit = dict(steps=cfg["gradinit_steps"], lr=1e-2, eta=0.1, gamma=1.0, min_scale=0.01)
    return [C.keras_default(), C.he(), *C.anyinit(), C.suite("lsuv"),
            C.suite("metainit", steps=cfg["metainit_steps"]),
            C.suite("gradinit", **gradinit),
            C.suite(["lsuv", "gradinit"], **gradinit),
            C.suite("gradcosine", steps=cfg["gradcosine_steps"]),
            C.reference("BatchNorm", model={"norm": "batch"})]


def tables(quick: bool):
    cfg = QUICK if quick else FULL
    train, test, subset = data.fashion_mnist(cfg["subset"], train_size=cfg["train_size"],
                                             test_size=cfg["test_size"])
    where = f"Fashion-MNIST {subset} ({len(train[0])} train / {len(test[0])} test)"
    mlp = {"depth": cfg["mlp"][0], "width": cfg["mlp"][1]}
    mlp_name = f"plain ReLU MLP {cfg['mlp'][0]}x{cfg['mlp'][1]}"
    out = []
    for key, build, arguments, name, clip in (
            ("vgg", models.vgg, {"widths": cfg["vgg"]},
             f"VGG-like CNN, {len(cfg['vgg'])} convolutions {cfg['vgg']}", 1.0),
            ("mlp", models.mlp, mlp, mlp_name, 1.0),
            ("mlp_noclip", models.mlp, mlp, mlp_name + ", no clipping", None)):
        if key not in cfg["steps"]:
            continue
        r = C.keep(rows(cfg), cfg.get("keep"))
        budget = Budget("sgd", 0.1, momentum=0.9, batch_size=cfg["batch"],
                        steps=cfg["steps"][key], global_clipnorm=clip)
        text = "a suite method beats every analytic init at SGD 0.1"
        out.append(Table(
            key=key, title=f"{name}, no normalization, {where}", build=build,
            arguments=arguments, data=(train, test), budget=budget, contenders=r,
            claims=[Claim(text + ("" if clip else " without clipping"),
                          [c.name for c in r if c.kind == "suite"], ANALYTIC, ["BatchNorm"])]))
    return out
