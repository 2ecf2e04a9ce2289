import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_drelu import DReLU
from keras_drelu import MaxValueRegularizer
from keras_drelu import SReLU
from keras_drelu import max_values
from keras_drelu.layers.splash import SPLASH
from retrofit.export import export_for_serving
from retrofit.placements import PLACEMENTS
from retrofit.placements import backbone_layer
from retrofit.placements import build_retrofit_model

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


def tiny_backbone(input_shape=(None, None, 3), pooled=False):
    """A stand-in for a keras-hub or applications backbone without top."""
    layers = [keras.Input(input_shape), keras.layers.Conv2D(5, 3)]
    if pooled:
        layers.append(keras.layers.GlobalMaxPooling2D())
    return keras.Sequential(layers, name="tiny")


def test_placement_table():
    assert set(PLACEMENTS) == {"head", "input"}
    for name, placement in PLACEMENTS.items():
        assert placement.name == name and placement.description


@pytest.mark.parametrize("backbone", BACKBONES)
def test_head_placement(backbone):
    model = build_retrofit_model(
        backbone, (32, 32, 3), 3, placement="head", activation="drelu",
        units=8, lam=0.5, weights=None,
    )
    assert model.name == f"{backbone.lower()}_head_drelu_retrofit"
    names = [layer.name for layer in model.layers]
    # pooling -> Dense(units) -> DReLU -> Dense(num_classes), after the backbone
    assert names[-4:] == ["pool", "head_dense", "head_drelu", "logits"]
    assert names.index(backbone_layer(model).name) == names.index("pool") - 1
    cap = model.get_layer("head_drelu")
    assert isinstance(cap, DReLU) and cap.trainable_max_value
    assert isinstance(cap.max_value_regularizer, MaxValueRegularizer)
    assert len(model.losses) == 1
    np.testing.assert_allclose(float(model.losses[0]), 0.5 * 8 * 100.0**2, rtol=1e-6)
    assert model.output.shape == (None, 3)
    caps = caps_after_one_step(model, (32, 32, 3))
    assert caps["head_drelu"].shape == (8,)
    assert caps["head_drelu"].max() < 100.0  # trained and penalised


@pytest.mark.parametrize("backbone", BACKBONES)
def test_input_placement(backbone):
    model = build_retrofit_model(
        backbone, (28, 28, 1), 4, placement="input", lam=0.5, weights=None
    )
    assert model.name == f"{backbone.lower()}_input_drelu_retrofit"
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["images", "input_conv", "input_drelu"]
    assert "head_dense" not in names and "grey_to_rgb" not in names
    assert names.index("preprocess") < names.index(backbone_layer(model).name)
    cap = model.get_layer("input_drelu")
    assert cap.max_value.shape == (3,)  # one cap per channel fed to the backbone
    assert model.output.shape == (None, 4)
    # The convolution starts as a pass-through of the grey image.
    x = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype("float32")
    front = keras.Model(model.input, cap.output)
    np.testing.assert_allclose(front(x).numpy(), np.repeat(x, 3, axis=-1), atol=1e-6)
    caps = caps_after_one_step(model, (28, 28, 1))
    assert caps["input_drelu"].max() < 100.0


def test_every_activation_at_every_placement():
    kinds = {"drelu": DReLU, "srelu": SReLU, "relu": keras.layers.ReLU, "splash": SPLASH}
    x = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype("float32")
    for placement in PLACEMENTS:
        for activation, kind in kinds.items():
            model = build_retrofit_model(
                tiny_backbone(), (16, 16, 3), 5, placement=placement,
                activation=activation, units=4,
                max_value=0.5 if activation == "srelu" else None,
            )
            layer = model.get_layer(f"{placement}_{activation}")
            assert type(layer) is kind
            assert model.name == f"tiny_{placement}_{activation}_retrofit"
            assert model(x).shape == (2, 5)
            assert len(model.losses) == (activation == "drelu")


def test_baseline_activations_and_resizing():
    relu = build_retrofit_model(
        "MobileNetV2", (16, 16, 3), 5, activation="relu", units=4, weights=None
    )
    assert isinstance(relu.get_layer("head_relu"), keras.layers.ReLU)
    assert max_values(relu) == {}
    assert relu.get_layer("resize").output.shape == (None, 32, 32, 3)
    srelu = build_retrofit_model(
        "MobileNetV2", (32, 32, 3), 5, activation="srelu", max_value=2.0,
        units=4, weights=None,
    )
    assert srelu.get_layer("head_srelu").cap == 2.0
    assert "resize" not in [layer.name for layer in srelu.layers]


def test_model_backbone_is_used_as_it_is():
    backbone = tiny_backbone()
    kernel = backbone.layers[0].kernel.numpy()
    model = build_retrofit_model(backbone, (20, 24, 1), 3, units=4)
    names = [layer.name for layer in model.layers]
    # No registry preprocessing and no resizing for a backbone of any size;
    # grey images are repeated to the three channels it takes.
    assert "preprocess" not in names and "resize" not in names
    assert "grey_to_rgb" in names and "pool" in names
    assert backbone_layer(model) is backbone
    np.testing.assert_array_equal(backbone.layers[0].kernel.numpy(), kernel)
    x = np.random.default_rng(0).uniform(size=(2, 20, 24, 1)).astype("float32")
    features = backbone(np.repeat(x, 3, axis=-1)).numpy().mean(axis=(1, 2))
    head = model.get_layer("head_dense")
    np.testing.assert_allclose(
        keras.Model(model.input, head.output)(x).numpy(),
        features @ head.kernel.numpy() + head.bias.numpy(),
        rtol=1e-5, atol=1e-5,
    )


def test_model_backbone_fixing_its_size_and_pooling_itself():
    backbone = tiny_backbone((12, 12, 3), pooled=True)
    model = build_retrofit_model(backbone, (32, 32, 3), 3, placement="input")
    names = [layer.name for layer in model.layers]
    assert model.get_layer("resize").output.shape == (None, 12, 12, 3)
    assert "pool" not in names
    assert model.output.shape == (None, 3)
    with pytest.raises(ValueError, match=r"fixes its input size to \(12, 12\)"):
        build_retrofit_model(backbone, (32, 32, 3), 3, image_size=16)


def test_bad_model_backbones():
    with pytest.raises(ValueError, match="carries its own weights"):
        build_retrofit_model(tiny_backbone(), (8, 8, 3), 3, weights="imagenet")
    flat = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"input_shape=\(None, 8\)"):
        build_retrofit_model(flat, (8, 8, 3), 3)
    with pytest.raises(ValueError, match="1-channel images"):
        build_retrofit_model(tiny_backbone((None, None, 1)), (8, 8, 3), 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"placement": "bottleneck"}, "placement='bottleneck'"),
        ({"activation": "gelu"}, "activation='gelu'"),
        ({"activation": "relu", "lam": 0.1}, "`lam` does not apply to activation='relu'"),
        ({"activation": "srelu"}, "needs the argument `max_value`"),
        ({"lam": -1.0}, "lam=-1.0"),
        ({"units": 0}, "units=0"),
        ({"image_shape": (32, 32, 2)}, r"image_shape=\(32, 32, 2\)"),
        ({"num_classes": 0}, "num_classes=0"),
        ({"image_size": 2.5}, "image_size=2.5"),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"image_shape": (32, 32, 3), "num_classes": 3, "weights": None, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_retrofit_model("MobileNetV2", **arguments)


@pytest.mark.slow
def test_retrofit_model_file_loads_after_import_retrofit(tmp_path, run_python):
    # A run's model.keras holds retrofit's own preprocessing layer: a fresh
    # process that imports `retrofit` (nothing else of it) must load it.
    # Its SavedModel, the run's export of a real backbone, serves in it too.
    model = build_retrofit_model(
        "MobileNetV3Small", (32, 32, 1), 3, units=8, lam=1e-3, weights=None
    )
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 1), np.uint8)
    x = images.astype("float32") / 255.0
    model.save(tmp_path / "model.keras")
    export_for_serving(model, str(tmp_path / "serving"))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "images.npy", images)
    printed = run_python(
        f"""
        import numpy as np, keras, tensorflow as tf
        import retrofit
        model = keras.saving.load_model({str(tmp_path / 'model.keras')!r})
        np.save({str(tmp_path / 'y.npy')!r}, keras.ops.convert_to_numpy(
            model(np.load({str(tmp_path / 'x.npy')!r}))))
        print(type(model.get_layer("preprocess")).__name__)
        serve = tf.saved_model.load({str(tmp_path / 'serving')!r}).signatures[
            "serving_default"]
        served = serve(images=tf.constant(np.load({str(tmp_path / 'images.npy')!r})))
        np.save({str(tmp_path / 'p.npy')!r}, served["probabilities"].numpy())
        """
    )
    assert printed.split() == ["BackbonePreprocessing"]
    logits = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), logits, rtol=1e-5, atol=1e-6,
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "p.npy"),
        keras.ops.convert_to_numpy(keras.ops.softmax(logits)),
        rtol=1e-5, atol=1e-6,
    )
