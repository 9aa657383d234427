"""Models and a training check shared by several test modules."""
import keras

import keras_metainit as km

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def mlp(depth=4, width=32, scale=1.0, seed=0, inputs=784, bias="zeros"):
    """A ReLU MLP from He-normal kernels, every kernel multiplied by ``scale``."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((inputs,))]
        + [keras.layers.Dense(width, "relu", kernel_initializer="he_normal",
                              bias_initializer=bias) for _ in range(depth)]
        + [keras.layers.Dense(10, bias_initializer=bias)]
    )
    for v in model.trainable_variables:
        if len(v.shape) == 2:
            v.assign(v * scale)
    return model


def short_fit(model, data, epochs=2):
    """SGD with momentum: unlike Adam, it does not rescue a badly scaled start by itself."""
    x, y, xt, yt = data
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), CE, metrics=["accuracy"])
    model.fit(x, y, batch_size=128, epochs=epochs, verbose=0)
    return model.evaluate(xt, yt, verbose=0)[1]


def bn_net(depth=3, width=48, seed=0):
    """Dense, BatchNormalization, ReLU and Dropout blocks on 784 inputs, 10 logits."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((784,))]
    for _ in range(depth):
        layers += [keras.layers.Dense(width), keras.layers.BatchNormalization(),
                   keras.layers.ReLU(), keras.layers.Dropout(0.3)]
    return keras.Sequential(layers + [keras.layers.Dense(10)])


def plain_mlp(depth, width, scale, seed):
    """A ReLU MLP on 784 inputs from He-normal kernels multiplied by ``scale``; zero biases."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((784,))]
        + [keras.layers.Dense(width, "relu", kernel_initializer="he_normal") for _ in range(depth)]
        + [keras.layers.Dense(10)])
    for v in model.trainable_variables:
        if len(v.shape) == 2:
            v.assign(v * scale)
    return model


def recovers_from_bad_init(name, options, bad_scale, fmnist, capsys):
    """A learned method on a badly scaled 8x64 MLP: one epoch of Adam then beats chance and the
    bad start."""
    x, y, xt, yt = fmnist

    def fit(model):
        model.compile(keras.optimizers.Adam(1e-3), CE, metrics=["accuracy"])
        model.fit(x, y, batch_size=128, epochs=1, verbose=0)
        return model.evaluate(xt, yt, verbose=0)[1]

    bad = fit(plain_mlp(8, 64, bad_scale, seed=1))
    model = plain_mlp(8, 64, bad_scale, seed=1)
    report = km.meta_initialize(model, (x, y), method=name, seed=0, verbose=0, **options)
    acc = fit(model)
    with capsys.disabled():
        print(f"\n[{name} x{bad_scale}] {report.before} -> {report.after}; constraint steps "
              f"{report.constraint_steps}; acc bad {bad:.3f} -> {acc:.3f}")
    assert acc > 0.5 and acc > bad + 0.2
