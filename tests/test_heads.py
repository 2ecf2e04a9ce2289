import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_drelu import DReLU
from keras_drelu import MaxValueRegularizer
from keras_drelu import max_values
from keras_drelu.layers.splash import SPLASH
from retrofit.heads import backbone_layer
from retrofit.heads import build_retrofit_model

BACKBONES = ["MobileNetV2", "ResNet50", "InceptionV3"]


def caps_after_one_step(model, image_shape):
    # One eager SGD step: tracing a compiled train step of a ResNet costs
    # far more than the step itself.
    x = np.random.default_rng(0).uniform(size=(4,) + image_shape).astype("float32")
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = keras.losses.sparse_categorical_crossentropy(
            np.array([0, 1, 2, 0]), logits, from_logits=True
        )
        loss = tf.reduce_mean(loss) + tf.add_n(model.losses)
    variables = model.trainable_variables
    keras.optimizers.SGD(0.1).apply(tape.gradient(loss, variables), variables)
    return max_values(model)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_dense_head(backbone):
    model = build_retrofit_model(
        backbone, (32, 32, 3), 3, head="dense", units=8, lam=0.5, weights=None
    )
    names = [layer.name for layer in model.layers]
    # pooling -> Dense(units) -> DReLU -> Dense(num_classes), after the backbone
    assert names[-4:] == ["pool", "head_dense", "head_cap", "logits"]
    assert names.index(backbone_layer(model).name) == names.index("pool") - 1
    cap = model.get_layer("head_cap")
    assert isinstance(cap, DReLU) and cap.trainable_max_value
    assert isinstance(cap.max_value_regularizer, MaxValueRegularizer)
    assert len(model.losses) == 1
    np.testing.assert_allclose(float(model.losses[0]), 0.5 * 8 * 100.0**2)
    assert model.output.shape == (None, 3)
    caps = caps_after_one_step(model, (32, 32, 3))
    assert caps["head_cap"].shape == (8,)
    assert caps["head_cap"].max() < 100.0  # trained and penalised


@pytest.mark.parametrize("backbone", BACKBONES)
def test_input_conv(backbone):
    model = build_retrofit_model(
        backbone, (28, 28, 1), 4, head="conv", lam=0.5, weights=None
    )
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["images", "input_conv", "input_cap"]
    assert names.index("preprocess") < names.index(backbone_layer(model).name)
    cap = model.get_layer("input_cap")
    assert cap.max_value.shape == (3,)  # one cap per channel fed to the backbone
    assert model.output.shape == (None, 4)
    # The convolution starts as a pass-through of the grey image.
    x = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype("float32")
    front = keras.Model(model.input, cap.output)
    np.testing.assert_allclose(front(x).numpy(), np.repeat(x, 3, axis=-1), atol=1e-6)
    caps = caps_after_one_step(model, (28, 28, 1))
    assert caps["input_cap"].max() < 100.0


def test_baseline_heads_and_resizing():
    relu = build_retrofit_model("MobileNetV2", (16, 16, 3), 5, head="relu", units=4, weights=None)
    assert isinstance(relu.get_layer("head_relu"), keras.layers.ReLU)
    assert max_values(relu) == {}
    assert relu.get_layer("resize").output.shape == (None, 32, 32, 3)
    splash = build_retrofit_model("MobileNetV2", (32, 32, 3), 5, head="splash", units=4, weights=None)
    assert isinstance(splash.get_layer("head_splash"), SPLASH)
    names = [layer.name for layer in splash.layers]
    assert "resize" not in names


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"head": "bottleneck"}, "head='bottleneck'"),
        ({"units": 0}, "units=0"),
        ({"image_shape": (32, 32, 2)}, r"image_shape=\(32, 32, 2\)"),
        ({"num_classes": 0}, "num_classes=0"),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"image_shape": (32, 32, 3), "num_classes": 3, "weights": None, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_retrofit_model("MobileNetV2", **arguments)
