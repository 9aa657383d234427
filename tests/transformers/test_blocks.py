"""find_blocks: hand-written Post-LN, Pre-LN and encoder-decoder models, keras_hub's
TransformerEncoder/Decoder stacks and BERT, and blocks it cannot identify (reported, not
scaled)."""
import keras
import numpy as np
import pytest
from keras import layers as L

from keras_metainit.transformers import (AttentionBlock, DeepNormResidual, find_blocks,
                                         register_block)
from keras_metainit.transformers import detect


def _layers(model, cls):
    return [layer for layer in model._flatten_layers() if type(layer) is cls]


def test_hand_written_post_ln(build):
    model = build(3)
    scan = find_blocks(model)
    mhas, denses = _layers(model, L.MultiHeadAttention), _layers(model, L.Dense)
    assert [b.attention for b in scan.blocks] == [[m] for m in mhas]
    assert [b.feedforward for b in scan.blocks] == [denses[2 * i:2 * i + 2] for i in range(3)]
    assert {(b.role, b.norm, b.alpha, b.cross) for b in scan.blocks} == {
        ("encoder", "post", 1.0, False)}
    assert [(e.layer.name, e.role) for e in scan.embeddings] == [("src_embedding", "encoder")]
    assert scan.unidentified == [] and scan.count("encoder") == 3


def test_pre_ln_with_plus_and_an_encoder_decoder(build):
    x = keras.Input((8, 16))
    h = x + L.MultiHeadAttention(2, 8)(L.LayerNormalization()(x), L.LayerNormalization()(x))
    h = h + L.Dense(16)(L.Dense(32, activation="gelu")(L.LayerNormalization()(h)))
    (block,) = find_blocks(keras.Model(x, h)).blocks
    assert (block.norm, len(block.feedforward)) == ("pre", 2)

    scan = find_blocks(build(2, 3, norm="pre"))
    assert [b.role for b in scan.blocks] == ["encoder"] * 2 + ["decoder"] * 3
    assert all(len(b.attention) == 2 and b.cross for b in scan.blocks[2:])
    assert all(len(b.kernels()) == 10 for b in scan.blocks[2:])
    assert {e.layer.name: e.role for e in scan.embeddings} == {"src_embedding": "encoder",
                                                               "tgt_embedding": "decoder"}


class _Block(L.Layer):
    """A subclassed block: its call() cannot be read from a graph."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.mha = L.MultiHeadAttention(2, 8, name="inner")
        self.up, self.down = L.Dense(32, activation="relu"), L.Dense(16)

    def call(self, x):
        x = x + self.mha(x, x)
        return x + self.down(self.up(x))


def _with_odd_layers():
    x = keras.Input((8, 16))
    h = L.LayerNormalization()(L.Add()([x, L.MultiHeadAttention(2, 8, name="good")(x, x)]))
    h = L.LayerNormalization()(L.Add()([h, L.Dense(16)(L.Dense(32, activation="relu")(h))]))
    h = _Block(name="custom")(h)
    h = L.MultiHeadAttention(2, 8, name="lonely")(h, h)  # no residual around it
    return keras.Model(x, L.Dense(4, name="head")(h))


def test_unidentified_blocks_are_reported_and_left_alone():
    model = _with_odd_layers()
    scan = find_blocks(model)
    assert [b.attention[0].name for b in scan.blocks] == ["good"]
    reasons = {u.name: u.reason for u in scan.unidentified}
    assert set(reasons) == {"custom/inner", "lonely"}
    assert "subclassed layer" in reasons["custom/inner"]
    assert "no residual merge" in reasons["lonely"]
    odd = [v for v in model.weights if v.path.startswith(("custom", "lonely"))]
    before = [keras.ops.convert_to_numpy(v.value) for v in odd]
    with pytest.warns(UserWarning) as caught:  # up front: before any kernel changes
        report = model.meta_initialize(method="t_fixup", verbose=0)
    assert sorted(str(w.message).split(":")[1:3] for w in caught) == [
        [" not identified", " 'custom/inner' (MultiHeadAttention)"],
        [" not identified", " 'lonely' (MultiHeadAttention)"]]
    assert all(np.array_equal(a, keras.ops.convert_to_numpy(v.value)) for a, v in zip(before, odd))
    skipped = {r["name"]: r["status"] for r in report.layers if r["status"] != "set"}
    assert skipped["lonely"].startswith("skipped: no residual merge")
    assert any("2 layers not identified" in note for note in report.notes)


def test_register_block_teaches_a_subclassed_block(monkeypatch):
    monkeypatch.setattr(detect, "_REGISTERED", {})
    register_block(_Block, lambda layer: AttentionBlock(
        layer.name, [layer.mha], [layer.up, layer.down], source="_Block", layer=layer))
    scan = find_blocks(_with_odd_layers())
    assert [b.name for b in scan.blocks] == ["good", "custom"]
    assert [u.name for u in scan.unidentified] == ["lonely"]
    with pytest.raises(ValueError, match="Argument `layer_class` must be a subclass"):
        register_block(int, lambda layer: None)


def test_a_residual_merge_that_scales_the_branch_is_not_a_block():
    x = keras.Input((8, 16))
    a = L.MultiHeadAttention(2, 8, name="swapped")(x, x)
    model = keras.Model(x, DeepNormResidual(2.0)([a, x]))  # [f(x), x]: alpha on the branch
    scan = find_blocks(model)
    assert not scan.blocks and "scales the branch" in scan.unidentified[0].reason


def test_an_unbuilt_model_is_an_error():
    with pytest.raises(ValueError, match="is not built"):
        find_blocks(keras.Sequential([L.Dense(3)]))


def test_keras_hub_encoder_and_decoder_stacks():
    keras_hub = pytest.importorskip("keras_hub")
    H = keras_hub.layers
    src, tgt = keras.Input((8,), dtype="int32"), keras.Input((8,), dtype="int32")
    e = H.TokenAndPositionEmbedding(50, 8, 16, name="src_tokens")(src)
    for i in range(2):
        e = H.TransformerEncoder(32, 2, normalize_first=bool(i))(e)
    d = H.TokenAndPositionEmbedding(50, 8, 16, name="tgt_tokens")(tgt)
    for _ in range(3):
        d = H.TransformerDecoder(32, 2)(d, e)
    model = keras.Model([src, tgt], L.Dense(50)(d))
    scan = find_blocks(model)
    assert [(b.role, b.norm, len(b.attention)) for b in scan.blocks] == [
        ("encoder", "post", 1), ("encoder", "pre", 1)] + [("decoder", "post", 2)] * 3
    assert [b.layer for b in scan.blocks] == [
        layer for layer in model.layers if isinstance(layer, (H.TransformerEncoder,
                                                              H.TransformerDecoder))]
    roles = {(e.layer.path, e.role, e.positional) for e in scan.embeddings}
    assert roles == {("src_tokens/token_embedding", "encoder", False),
                     ("src_tokens/position_embedding", None, True),
                     ("tgt_tokens/token_embedding", "decoder", False),
                     ("tgt_tokens/position_embedding", None, True)}
    assert scan.unidentified == []
    seq = keras.Sequential([keras.Input((8,), dtype="int32"), L.Embedding(50, 16),
                            H.TransformerEncoder(32, 2), H.TransformerEncoder(32, 2)])
    assert find_blocks(seq).count("encoder") == 2


def test_keras_hub_bert_built_offline():
    keras_hub = pytest.importorskip("keras_hub")
    bert = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=2, num_heads=2,
                                         hidden_dim=16, intermediate_dim=32,
                                         max_sequence_length=8)
    scan = find_blocks(bert)
    assert [(b.name, b.role, b.norm) for b in scan.blocks] == [
        ("transformer_layer_0", "encoder", "post"), ("transformer_layer_1", "encoder", "post")]
    assert {e.layer.name: e.role for e in scan.embeddings} == {
        "token_embedding": "encoder", "segment_embedding": "encoder", "position_embedding": None}
