"""Regime 5: recovery from bad starts.

Deep plain ReLU nets without normalization (a 20x128 MLP and the strided 8x16 CNN of
``keras_metainit.experiments.models.cnn``) started from He-normal with every kernel ×0.1 (the
signal vanishes) or ×3 (it explodes), repaired by each method, then trained with SGD 0.01,
momentum 0.9 on the full Fashion-MNIST. Keras's default and He without a bad start are the
baselines, the bad start left as it is the floor. MetaInit runs on random data (its reference
setting); AnyInit redraws every kernel, so it does not keep the bad start's directions.
"""
from keras_metainit.experiments import contenders as C
from keras_metainit.experiments import data, models
from keras_metainit.experiments.contenders import Contender
from keras_metainit.experiments.runner import Claim, Table
from keras_metainit.experiments.training import Budget

KEY = "recovery"
NUMBER = 5
TITLE = "Recovery from bad starts"
CLAIM = ("MetaInit, LSUV (and GradInit): from a badly scaled start (x0.1 or x3 He-normal) the "
         "method restores a net that trains like a good init.")

FULL = dict(subset="auto", train_size=None, test_size=None, starts=(0.1, 3.0), steps=300,
            batch=128, lr=0.01, mlp=(20, 128), cnn=(8, 16), metainit_steps=100,
            gradinit_steps=50)
QUICK = dict(FULL, subset="small", train_size=1024, test_size=512, starts=(0.1,), steps=20,
             mlp=(4, 16), cnn=(3, 4), metainit_steps=2, gradinit_steps=2,
             keep=("He", "x0.1 He", "x0.1 + LSUV"))


def rows(cfg, scale):
    repairs = [C.suite("metainit", random_data=True, steps=cfg["metainit_steps"]),
               C.suite("lsuv"),
               C.suite("gradinit", steps=cfg["gradinit_steps"], lr=0.1), *C.anyinit()]
    broken = Contender(f"x{scale:g} He, no fix", "start", {"kernel_initializer": "he_normal"},
                       scale=scale)
    return ([C.keras_default(), C.he(), broken]
            + [r.on(scale=scale, kernel_initializer="he_normal").named(f"x{scale:g} + {r.name}")
               for r in repairs])


def tables(quick: bool):
    cfg = QUICK if quick else FULL
    train, test, subset = data.fashion_mnist(cfg["subset"], train_size=cfg["train_size"],
                                             test_size=cfg["test_size"])
    budget = Budget("sgd", cfg["lr"], momentum=0.9, batch_size=cfg["batch"], steps=cfg["steps"])
    out = []
    for key, build, arguments in (
            (f"mlp{cfg['mlp'][0]}x{cfg['mlp'][1]}", models.mlp,
             {"depth": cfg["mlp"][0], "width": cfg["mlp"][1]}),
            (f"cnn{cfg['cnn'][0]}x{cfg['cnn'][1]}", models.cnn,
             {"depth": cfg["cnn"][0], "width": cfg["cnn"][1]})):
        for scale in cfg["starts"]:
            r = C.keep(rows(cfg, scale), cfg.get("keep"))
            fixes = [c.name for c in r if c.kind == "suite"]
            out.append(Table(
                key=f"{key}_x{scale:g}",
                title=f"{key} from x{scale:g} He-normal, Fashion-MNIST {subset}",
                build=build, arguments=arguments, data=(train, test), budget=budget,
                contenders=r,
                claims=[Claim(f"a method repairs the x{scale:g} start",
                              fixes, [f"x{scale:g} He, no fix"]),
                        Claim("a repaired start beats every analytic init", fixes,
                              ["Keras default", "He", f"x{scale:g} + AnyInit (empirical)"])]))
    return out
