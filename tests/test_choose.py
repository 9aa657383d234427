"""choose: the default initialization by what the model is (Post-LN -> T-Fixup, attention or
unnormalized residuals -> MetaInit, else LSUV)."""
import keras

from keras_metainit import methods
from keras_metainit.choose import (ATTENTION_STEPS, RESIDUAL_STEPS, attention_layers, choose,
                                   unnormalized_residuals)
from keras_metainit.experiments import models


def test_a_post_ln_transformer_gets_t_fixup_and_a_pre_ln_one_metainit():
    post = models.transformer(2, 8, heads=2, ffn=16, vocab=5, length=4, seed=0)
    method, reason = choose(post)
    assert type(method).__name__ == "TFixup", method
    assert reason.startswith("2 Post-LN attention block(s): T-Fixup")
    pre = models.transformer(2, 8, heads=2, ffn=16, vocab=5, length=4, post_ln=False, seed=0)
    method, reason = choose(pre)
    assert isinstance(method, methods.MetaInit) and method.steps == ATTENTION_STEPS
    assert "2 attention layer(s) (MultiHeadAttention) in no Post-LN block" in reason


def test_a_tiny_mlp_gets_lsuv():
    method, reason = choose(models.mlp(3, 8, seed=0))
    assert method == "lsuv" and "no attention layers" in reason
    assert methods.get(method).__class__.__name__ == "LSUV"


def test_a_residual_net_without_normalization_gets_metainit_and_with_it_lsuv():
    res = models.residual_mlp(blocks=3, width=8, seed=0)
    assert len(unnormalized_residuals(res)) == 3
    method, reason = choose(res)
    assert isinstance(method, methods.MetaInit) and method.steps == RESIDUAL_STEPS
    assert reason.startswith("3 residual addition(s) and no normalization layer: MetaInit")
    # a normalization layer anywhere (here inside a nested model) and it is LSUV's again
    x = keras.Input((28, 28, 1))
    inner = keras.Sequential([keras.Input((8,)), keras.layers.LayerNormalization()])
    normed = keras.Model(x, inner(res(x)[..., :8]))
    assert unnormalized_residuals(normed) == [] and choose(normed)[0] == "lsuv"


class _Block(keras.layers.Layer):
    """A block that holds its attention as an attribute (as keras_hub's encoders do)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.attention = keras.layers.MultiHeadAttention(2, 4)

    def call(self, x):
        return x + self.attention(x, x)


def test_attention_inside_sub_models_and_layers_is_found():
    inner_in = keras.Input((6, 8))
    inner = keras.Model(inner_in, _Block()(inner_in))
    outer_in = keras.Input((6, 8))
    outer = keras.Model(outer_in, keras.layers.Dense(3)(inner(outer_in)))
    assert [type(layer).__name__ for layer in attention_layers(outer)] == ["MultiHeadAttention"]
    assert isinstance(choose(outer)[0], methods.MetaInit)
    plain_in = keras.Input((6, 8))
    plain = keras.Model(plain_in, keras.layers.Dense(3)(plain_in))
    assert attention_layers(plain) == [] and choose(plain)[0] == "lsuv"


def test_the_default_call_runs_the_choice_and_says_why():
    import numpy as np
    import pytest

    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, (32, 4))
    for post_ln, name in ((True, "t_fixup"), (False, "metainit")):
        model = models.transformer(1, 8, heads=2, ffn=16, vocab=5, length=4, post_ln=post_ln,
                                   seed=0)
        before = [w.copy() for w in model.get_weights()]
        steps = {} if post_ln else {"steps": 2}  # T-Fixup is analytic: it takes no steps
        report = model.meta_initialize((x, x), seed=0, verbose=0, **steps)
        assert report.method == name
        assert report.notes[0].startswith(f"method 'auto' chose {name}: "), report.notes
        assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

    mlp = models.mlp(2, 8, input_shape=(6,), seed=0)
    report = mlp.meta_initialize((rng.normal(size=(64, 6)), rng.integers(0, 10, 64)), seed=0,
                                 verbose=0)
    assert report.method == "lsuv" and report.notes[0].startswith("method 'auto' chose lsuv")
    with pytest.raises(ValueError, match="need a named method"):
        mlp.meta_initialize(rng.normal(size=(64, 6)), verbose=0, lr=0.1)
