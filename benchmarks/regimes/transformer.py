"""Regime 2: a Post-LN Transformer encoder without warmup.

A 6-block Post-LN encoder (``keras_metainit.experiments.models.transformer``: Embedding + learned
positions, MultiHeadAttention, ReLU FFN, LayerNormalization after each residual addition) is
trained to reverse random sequences (vocabulary 16, length 16) with Adam, batch 64, no warmup
(warmup 1), at three rates. Every row starts from Keras's default init unless it says otherwise;
the references are the same net with a linear warmup and the Pre-LN net. A run is *solved* when
its held-out token accuracy reaches 0.9 (chance is 1/16).
"""
from keras_metainit.experiments import contenders as C
from keras_metainit.experiments import data, models
from keras_metainit.experiments.runner import Claim, Table
from keras_metainit.experiments.training import Budget

KEY = "transformer"
NUMBER = 2
TITLE = "Post-LN Transformer without warmup"
CLAIM = ("T-Fixup / Admin / DeepNorm, GradInit (Post-LN Transformer, Adam 5e-4, warmup 1) and "
         "MetaInit: from a standard init a Post-LN Transformer without warmup stalls or "
         "diverges; the right initialization makes it train without warmup.")

FULL = dict(layers=6, dim=32, ffn=64, heads=2, vocab=16, length=16, steps=400, batch=64,
            lrs=(1e-3, 3e-3, 5e-4), main_lr=1e-3, warmup=100, metainit_steps=20,
            gradinit_steps=20, gradcosine_steps=20, test=1024)
QUICK = dict(FULL, layers=2, dim=16, ffn=32, heads=2, steps=30, lrs=(1e-3,), warmup=10,
             metainit_steps=2, gradinit_steps=2, gradcosine_steps=2, test=256,
             keep=("Keras default", "AnyInit", "warmup", "Pre-LN"))

ANALYTIC = ["Keras default", "He", "AnyInit (empirical)"]


def rows(cfg, lr):
    """The rows at rate ``lr``: every contender at the main rate (``cfg["main_lr"]``), the
    analytic and suite rows that decide the verdicts at the others. GradInit runs with its
    paper's Transformer settings (Adam look-ahead step, η = 1e-3; at the main rate also with η
    at the training rate when that differs)."""
    main = lr == cfg["main_lr"]
    gradinit = dict(steps=cfg["gradinit_steps"], step="adam")
    out = [C.keras_default(), C.chosen()]  # the default call: meta_initialize(data)
    if main:
        out += [C.he(), *C.anyinit()]
    out += [C.reference(f"warmup {cfg['warmup']}", budget={"warmup": cfg["warmup"]}),
            C.reference("Pre-LN", model={"post_ln": False}),
            C.suite("lsuv"), C.suite("metainit", steps=cfg["metainit_steps"]),
            *C.transformer_inits(),  # T-Fixup, DeepNorm: rows once keras_metainit has them
            C.suite("gradinit", eta=1e-3, **gradinit)]
    if main:
        if lr != 1e-3:
            out.append(C.suite("gradinit", eta=lr, label="GradInit (η = training rate)",
                               **gradinit))
        out += [C.suite("gradinit", steps=cfg["gradinit_steps"],
                        label="GradInit (defaults: η 0.1, SGD step)"),
                C.suite("gradcosine", steps=cfg["gradcosine_steps"]),
                C.suite(["lsuv", "gradinit"], eta=1e-3, **gradinit),
                C.suite(["t_fixup", "gradinit"], eta=1e-3, **gradinit)]
    return out


def tables(quick: bool):
    cfg = QUICK if quick else FULL
    train = data.sequence_task("reverse", cfg["steps"] * cfg["batch"], vocab=cfg["vocab"],
                               length=cfg["length"], seed=100)
    test = data.sequence_task("reverse", cfg["test"], vocab=cfg["vocab"], length=cfg["length"],
                              seed=999)
    arguments = {k: cfg[k] for k in ("layers", "dim", "ffn", "heads", "vocab", "length")}
    out = []
    for lr in cfg["lrs"]:
        r = C.keep(rows(cfg, lr), cfg.get("keep"))
        suite_rows = [c.name for c in r if c.kind == "suite"]
        out.append(Table(
            key=f"post_ln_adam_{lr:g}",
            title=(f"{cfg['layers']}-block Post-LN encoder (d {cfg['dim']}, FFN {cfg['ffn']}), "
                   f"reverse (vocabulary {cfg['vocab']}, length {cfg['length']}), Adam {lr:g}, "
                   "no warmup"),
            build=models.transformer, arguments=arguments, data=(train, test),
            budget=Budget("adam", lr, batch_size=cfg["batch"], steps=cfg["steps"]),
            contenders=r, solved=0.9,
            claims=[Claim("a suite method makes the Post-LN net train without warmup, above "
                          "every analytic init", suite_rows, ANALYTIC,
                          [f"warmup {cfg['warmup']}", "Pre-LN"])]))
    return out
