"""methods/metainit.py: a bad start recovered (GQ down, then training that the bad start does not
do), and the paper's ε lowers GQ. (Its argument checks: test_base.py.)"""
import pytest

from tests.nets import mlp, short_fit


@pytest.mark.numerics
@pytest.mark.slow
@pytest.mark.parametrize("bad_scale", [0.1, 3.0])
def test_metainit_recovers_from_bad_init(bad_scale, fmnist, capsys):
    depth, width = 12, 96
    he_acc = short_fit(mlp(depth, width, seed=1), fmnist)
    bad_acc = short_fit(mlp(depth, width, bad_scale, seed=1), fmnist)
    model = mlp(depth, width, bad_scale, seed=1)
    report = model.meta_initialize(None, steps=200, seed=0, verbose=0, method="metainit")
    acc = short_fit(model, fmnist)
    with capsys.disabled():
        print(f"\n[x{bad_scale}] GQ {report.before['gq']:.3g} -> {report.after['gq']:.3g}, "
              f"gain {report.end_to_end_gain['after']:.3g}; acc: He {he_acc:.3f}, "
              f"bad {bad_acc:.3f}, MetaInit {acc:.3f}")
    # From x0.1 the gradients vanish and GQ sits at its saturation value 1 (every coordinate
    # below ε adds ≈ 1); with the default ε = 1e-2 its minimum is just below 1.
    assert report.after["gq"] < (report.before["gq"] / 2 if bad_scale > 1 else report.before["gq"])
    assert bad_acc < 0.3, "the bad init should not train (else the test shows nothing)"
    assert acc > he_acc - 0.08
    assert acc > bad_acc + 0.3


@pytest.mark.numerics
@pytest.mark.parametrize("bad_scale", [0.1, 3.0])
def test_paper_eps_lowers_gq_at_least_twofold(bad_scale):
    model = mlp(12, 96, bad_scale, seed=1)
    report = model.meta_initialize(None, steps=200, eps=1e-5, seed=0, verbose=0, method="metainit")
    assert report.after["gq"] <= report.before["gq"] / 2
