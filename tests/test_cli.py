"""The ``keras-metainit`` command line: parsing into the demo's settings, diagnose, init, the
method choices read from the registry, and ``--help``. The demo itself: tests/test_demo.py."""
import argparse
import os
import shutil
import subprocess
import sys

import pytest

from keras_metainit import cli, demo, methods


def test_quick_keeps_explicit_options(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(demo, "run_demo", lambda cfg: seen.setdefault("cfg", cfg))
    cli.main(["demo", "--quick", "--seeds", "3", "--scenes", "mlp", "--out", str(tmp_path)])
    cfg = seen["cfg"]
    assert (cfg.seeds, cfg.scenes, cfg.out) == (3, ("mlp",), str(tmp_path))
    assert (cfg.depth, cfg.steps, cfg.init_steps) == (
        demo.QUICK["depth"], demo.QUICK["steps"], demo.QUICK["init_steps"])


def test_defaults_are_the_main_job(monkeypatch):
    seen = {}
    monkeypatch.setattr(demo, "run_demo", lambda cfg: seen.setdefault("cfg", cfg))
    cli.main(["demo"])
    assert seen["cfg"] == demo.DemoConfig()
    assert seen["cfg"].scenes == ("transformer", "mlp") and seen["cfg"].seeds >= 2
    assert (seen["cfg"].layers, seen["cfg"].init_steps, seen["cfg"].plots) == (6, 0, True)


def test_no_plots(monkeypatch):
    seen = {}
    monkeypatch.setattr(demo, "run_demo", lambda cfg: seen.setdefault("cfg", cfg))
    cli.main(["demo", "--quick", "--no-plots"])
    assert seen["cfg"].plots is False


@pytest.mark.parametrize("argv", [
    ["demo", "--seeds", "0"], ["demo", "--seeds", "x"], ["demo", "--scenes", "cifar"],
    ["demo", "--depth", "3"], ["nope"],
    ["init", "m.keras", "-o", "o.keras"],  # --method is required
    ["init", "m.keras", "--method", "bogus", "-o", "o.keras"],
    ["diagnose", "m.keras", "--data", "cifar"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


def _init_choices():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    method = next(a for a in sub.choices["init"]._actions if a.dest == "method")
    return list(method.choices)


def test_init_method_choices_are_the_registry():
    assert _init_choices() == methods.available()
    assert {"metainit", "gradinit", "gradcosine", "lsuv", "sylvester"} <= set(_init_choices())


def test_a_new_learned_method_needs_only_its_registered_class():
    """A throwaway LearnedMethod subclass, registered, becomes an ``init --method`` choice and a
    ``get`` name with no other edit; it is taken out of the registry afterwards."""
    import tensorflow as tf

    before = dict(methods._REGISTRY)
    try:
        @methods.register
        class HalfNorm(methods.LearnedMethod):
            """Minimize the squared norm of the tuned weights (a toy objective)."""

            aliases = ("throwaway_halfnorm",)

            def __init__(self, steps: int = 3):
                self.steps = steps

            def objective(self, loss_fn, params, shards):
                value = tf.add_n([tf.reduce_sum(tf.square(p)) for p in params])
                return value, tf.constant(False), {"objective": value}

            def transform(self):
                from keras_metainit import scale_opt

                return scale_opt.sign_momentum(0.01)

        assert "throwaway_halfnorm" in _init_choices()
        assert isinstance(methods.get("throwaway_halfnorm", steps=5), HalfNorm)
        args = cli.build_parser().parse_args(
            ["init", "m.keras", "--method", "throwaway_halfnorm", "-o", "o.keras"])
        assert args.method == "throwaway_halfnorm"
        # and the engine runs it: the toy objective shrinks the kernel's norm
        import keras
        import numpy as np

        import keras_metainit

        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        norm = np.linalg.norm(model.layers[0].kernel.numpy())
        report = keras_metainit.meta_initialize(model, None, method="throwaway_halfnorm",
                                                batch_size=8, verbose=0)
        assert report.method == "throwaway_halfnorm" and report.steps_run == 3
        assert np.linalg.norm(model.layers[0].kernel.numpy()) < norm
    finally:
        methods._REGISTRY.clear()
        methods._REGISTRY.update(before)
    assert "throwaway_halfnorm" not in _init_choices()


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 1
    assert "usage: keras-metainit" in capsys.readouterr().err


def _console_script():
    """The installed ``keras-metainit`` script of the running interpreter's environment."""
    beside = os.path.join(os.path.dirname(sys.executable), "keras-metainit")
    return beside if os.path.exists(beside) else shutil.which("keras-metainit")


def test_console_script_help():
    script = _console_script()
    assert script, "the keras-metainit console script is not installed (pip install -e .)"
    proc = subprocess.run(
        [script, "--help"], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout


# ------------------------------------------------------------------ diagnose and init


def _save_mlp(path, scale=1.0, depth=6):
    """A ``depth``-layer He-normal ReLU MLP on 784 inputs, kernels times ``scale``, saved."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((784,))]
        + [keras.layers.Dense(64, "relu", kernel_initializer="he_normal") for _ in range(depth)]
        + [keras.layers.Dense(10, kernel_initializer="he_normal")]
    )
    for layer in model.layers:
        layer.kernel.assign(layer.kernel * scale)
    model.save(path)
    return model


def test_diagnose_healthy_model_exits_0(tmp_path, capsys):
    path = tmp_path / "he.keras"
    _save_mlp(path)
    assert cli.main(["diagnose", str(path), "--fail-if-unhealthy"]) == 0
    printed = capsys.readouterr().out
    assert "gradient quotient" in printed and "grad cosine" in printed
    assert printed.count("dense") >= 7  # a signal line per layer
    assert "healthy" in printed and "UNHEALTHY" not in printed


def test_diagnose_blown_up_model_fails_only_when_asked(tmp_path, capsys):
    path = tmp_path / "x3.keras"
    _save_mlp(path, scale=3.0)
    assert cli.main(["diagnose", str(path), "--fail-if-unhealthy"]) == 1
    assert "UNHEALTHY" in capsys.readouterr().out
    assert cli.main(["diagnose", str(path), "--data", "random", "--batch", "64"]) == 0
    # looser limits accept it
    assert cli.main(["diagnose", str(path), "--fail-if-unhealthy", "--max-gq", "1e30",
                     "--max-signal", "1e30"]) == 0


def test_diagnose_vanishing_signal_is_unhealthy(tmp_path, capsys):
    path = tmp_path / "x01.keras"
    _save_mlp(path, scale=0.1)  # GQ is near 1 here: only the signal ratio catches it
    assert cli.main(["diagnose", str(path), "--fail-if-unhealthy"]) == 1
    assert "RMS ratio" in capsys.readouterr().out


def test_init_writes_a_loadable_reinitialized_model(tmp_path, capsys):
    import keras
    import numpy as np

    src, dst = tmp_path / "in.keras", tmp_path / "out.keras"
    _save_mlp(src, scale=0.1, depth=4)
    assert cli.main(["init", str(src), "--method", "metainit", "--data", "random",
                     "--steps", "10", "-o", str(dst)]) == 0
    printed = capsys.readouterr().out
    assert "keras-metainit report: metainit" in printed and "saved" in printed
    before = keras.models.load_model(src)
    after = keras.models.load_model(dst)
    changed = [not np.allclose(a.kernel.numpy(), b.kernel.numpy())
               for a, b in zip(before.layers, after.layers)]
    assert any(changed), changed
    assert all(np.isfinite(l.kernel.numpy()).all() for l in after.layers)


def test_init_layerwise_on_bundled_data(tmp_path, capsys):
    import keras
    import numpy as np

    src, dst = tmp_path / "in.keras", tmp_path / "out.keras"
    _save_mlp(src, scale=0.1, depth=3)
    assert cli.main(["init", str(src), "--method", "lsuv", "-o", str(dst)]) == 0
    printed = capsys.readouterr().out
    assert "skipped" not in printed, printed  # a loaded Sequential's layers are not "shared"
    before, after = keras.models.load_model(src), keras.models.load_model(dst)
    assert not np.allclose(before.layers[0].kernel.numpy(), after.layers[0].kernel.numpy())
