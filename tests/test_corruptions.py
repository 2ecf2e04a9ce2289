"""Tests for keras_drelu.corruptions."""

import json

import keras
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from keras_drelu import corruptions
from keras_drelu.corruptions import CORRUPTIONS
from keras_drelu.corruptions import CorruptionResult
from keras_drelu.corruptions import RandomCorruption
from keras_drelu.corruptions import evaluate_corruptions
from keras_drelu.corruptions.blur import disk_kernel

NAMES = sorted(CORRUPTIONS)
RANDOM_NAMES = [
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "motion_blur",
    "fog",
    "rotation",
    "translation",
]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    # Smooth random images: blurred noise, like natural images at 16 px.
    x = scipy.ndimage.gaussian_filter(
        rng.uniform(size=(6, 16, 16, 3)), sigma=(0, 2, 2, 0)
    )
    x = (x - x.min()) / (x.max() - x.min())
    return x.astype("float32")


def rms(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, "float64") - b) ** 2)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keeps_shape_dtype_and_range(name, dtype, images):
    x = images.astype(dtype)
    for severity in (1, 5):
        y = corruptions.corrupt(x, name, severity, seed=1)
        assert y.shape == x.shape
        assert y.dtype == dtype
        y = y.numpy()
        assert y.min() >= 0.0 and y.max() <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_grey_images_work(name, images):
    x = images[..., :1]
    y = corruptions.corrupt(x, name, 3, seed=0).numpy()
    assert y.shape == x.shape and 0.0 <= y.min() <= y.max() <= 1.0


@pytest.mark.shared_data
def test_severity_is_monotone_on_real_images(shared_data_dir):
    x = np.load(shared_data_dir / "cifar10-subset.npz")["x_test"][:16]
    x = x.astype("float32") / 255.0
    for name in NAMES:
        distances = [
            rms(corruptions.corrupt(x, name, s, seed=0), x) for s in range(1, 6)
        ]
        assert distances[0] > 0.0, name
        assert distances[4] > 1.2 * distances[0], (name, distances)
        assert all(np.diff(distances) >= 0), (name, distances)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_given_a_seed(name, images):
    first = corruptions.corrupt(images, name, 4, seed=7).numpy()
    second = corruptions.corrupt(images, name, 4, seed=7).numpy()
    np.testing.assert_array_equal(first, second)
    other = corruptions.corrupt(images, name, 4, seed=8).numpy()
    if name in RANDOM_NAMES:
        assert np.abs(first - other).max() > 1e-3
    else:
        np.testing.assert_array_equal(first, other)


def test_works_inside_tf_function(images):
    @tf.function
    def noisy(x, seed):
        return corruptions.gaussian_noise(x, severity=2, seed=seed)

    seed = tf.constant([3, 4])
    np.testing.assert_allclose(
        noisy(images, seed).numpy(),
        corruptions.gaussian_noise(images, 2, seed=(3, 4)).numpy(),
    )


def test_contrast_matches_numpy(images):
    means = images.mean(axis=(1, 2), keepdims=True)
    expected = np.clip((images - means) * 0.15 + means, 0, 1)
    np.testing.assert_allclose(
        corruptions.contrast(images, 5).numpy(), expected, atol=1e-6
    )


def test_brightness_raises_the_hsv_value(images):
    y = corruptions.brightness(images, 5).numpy()
    value_before = images.max(axis=-1)
    value_after = y.max(axis=-1)
    np.testing.assert_allclose(
        value_after, np.minimum(value_before + 0.3, 1.0), atol=1e-5
    )


def test_gaussian_blur_matches_scipy(images):
    expected = scipy.ndimage.gaussian_filter(
        images, sigma=(0, 1.0, 1.0, 0), mode="reflect", truncate=4.0
    )
    np.testing.assert_allclose(
        corruptions.gaussian_blur(images, 5).numpy(), expected, atol=1e-5
    )


def test_defocus_kernel_is_a_normalised_disk():
    kernel = disk_kernel(1.5, 0.1)
    assert kernel.shape == (7, 7)
    assert kernel.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(kernel, kernel.T)
    # Within the radius the disk is flat; outside it, nearly empty.
    assert kernel[3, 3] == pytest.approx(kernel[3, 4], rel=1e-3)
    assert kernel[0, 0] < 1e-6


def test_impulse_noise_hits_the_expected_share():
    x = np.full((8, 32, 32, 3), 0.5, "float32")
    y = corruptions.impulse_noise(x, 5, seed=0).numpy()
    hit = y != 0.5
    assert hit.mean() == pytest.approx(0.07, abs=0.01)
    assert set(np.unique(y[hit])) == {0.0, 1.0}


def test_shot_noise_is_unbiased():
    x = np.full((8, 32, 32, 1), 0.4, "float32")
    y = corruptions.shot_noise(x, 5, seed=0).numpy()
    assert y.mean() == pytest.approx(0.4, abs=0.01)
    assert y.std() == pytest.approx(np.sqrt(0.4 / 50), rel=0.1)


def test_jpeg_compression_is_the_codec(images):
    x = np.round(images * 255) / 255
    expected = np.stack(
        [tf.image.adjust_jpeg_quality(im, 40).numpy() for im in x]
    )
    np.testing.assert_allclose(
        corruptions.jpeg_compression(x, 5).numpy(), expected, atol=1e-6
    )


def test_rotation_of_a_symmetric_image_keeps_its_centre():
    x = np.zeros((1, 9, 9, 1), "float32")
    x[0, 4, 4, 0] = 1.0
    y = corruptions.rotation(x, 5, seed=0).numpy()
    assert y[0, 4, 4, 0] == pytest.approx(1.0)


def test_registry_lists_every_category():
    listed = sorted(
        n for names in corruptions.CATEGORIES.values() for n in names
    )
    assert listed == NAMES
    assert corruptions.get("fog") is corruptions.fog


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"name": "snow"}, ValueError, "name='snow'"),
        ({"name": 3}, ValueError, "name=3"),
        ({"severity": 0}, ValueError, "severity=0"),
        ({"severity": 6}, ValueError, "severity=6"),
        ({"severity": 2.5}, TypeError, "severity=2.5"),
        ({"severity": "3"}, TypeError, "severity='3'"),
        ({"seed": "abc"}, ValueError, "seed='abc'"),
        ({"seed": (1, 2, 3)}, ValueError, "seed=\\(1, 2, 3\\)"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, message, images):
    arguments = {"name": "gaussian_noise", "severity": 1, "seed": 0, **kwargs}
    with pytest.raises(error, match=message):
        corruptions.corrupt(images, **arguments)


def test_bad_images_raise_clear_errors(images):
    with pytest.raises(TypeError, match="dtype uint8"):
        corruptions.fog((images * 255).astype("uint8"), 1)
    with pytest.raises(ValueError, match="shape \\(16, 16, 3\\)"):
        corruptions.fog(images[0], 1)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        corruptions.jpeg_compression(images[..., :2], 1)


@pytest.fixture(scope="module")
def mnist_model():
    rng = np.random.default_rng(0)
    # Two classes a tiny model learns in a few steps, bright top or bottom,
    # with 10% of labels flipped so that the model errs on every variant.
    x = rng.uniform(0, 0.3, size=(96, 12, 12, 1)).astype("float32")
    y = rng.integers(0, 2, size=96)
    x[y == 0, :6] += 0.6
    x[y == 1, 6:] += 0.6
    y = np.where(rng.uniform(size=96) < 0.1, 1 - y, y)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    return model, x[:48], y[:48]


def test_evaluate_corruptions_on_a_trained_model(mnist_model, tmp_path):
    model, x, y = mnist_model
    names = ["gaussian_noise", "contrast", "fog", "rotation"]
    result = evaluate_corruptions(
        model,
        x,
        y,
        corruptions=names,
        severities=(1, 3, 5),
        reference=model,
        batch_size=20,
        verbose=False,
    )
    _, accuracy = model.evaluate(x, y, verbose=0)
    assert result.clean_accuracy == pytest.approx(accuracy)
    assert 0.7 < result.clean_accuracy < 1.0
    assert list(result.accuracy) == names
    cells = [a for row in result.accuracy.values() for a in row.values()]
    assert len(cells) == 12 and all(0.0 <= a <= 1.0 for a in cells)
    assert result.mean_corruption_accuracy == pytest.approx(np.mean(cells))
    # Contrast at 0.15 wipes out most of what tells the classes apart.
    assert result.accuracy["contrast"][5] <= result.accuracy["contrast"][1]
    assert result.mce == pytest.approx(100.0)
    assert all(
        e == pytest.approx(100.0) for e in result.corruption_errors.values()
    )

    again = evaluate_corruptions(
        model,
        x,
        np.eye(2)[y],
        corruptions=names,
        severities=(1, 3, 5),
        reference=result,
        batch_size=20,
        verbose=False,
    )
    assert again.accuracy == result.accuracy
    assert again.reference_accuracy == result.accuracy
    assert again.mce == pytest.approx(100.0)

    table = result.to_markdown()
    assert table.splitlines()[0].startswith("| corruption | s1 | s3 | s5 |")
    assert "| contrast |" in table and "mCE 100.0%" in table
    loaded = json.loads(result.to_json(tmp_path / "result.json"))
    assert loaded["mce"] == pytest.approx(100.0)
    assert json.loads((tmp_path / "result.json").read_text()) == loaded
    png = result.save_heatmap(tmp_path / "heat.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_corruptions_is_deterministic(mnist_model):
    model, x, y = mnist_model
    runs = [
        evaluate_corruptions(
            model,
            x,
            y,
            corruptions="impulse_noise",
            severities=5,
            batch_size=16,
            verbose=False,
        )
        for _ in range(2)
    ]
    assert runs[0].accuracy == runs[1].accuracy
    assert runs[0].mce is None and runs[0].corruption_errors is None


def test_mce_follows_hendrycks_and_dietterich():
    result = CorruptionResult(
        clean_accuracy=0.9,
        accuracy={"a": {1: 0.8, 2: 0.6}, "b": {1: 0.5, 2: 0.5}},
        reference_clean_accuracy=0.9,
        reference_accuracy={"a": {1: 0.6, 2: 0.4}, "b": {1: 0.0, 2: 0.5}},
    )
    # a: (0.2 + 0.4) / (0.4 + 0.6) = 60%; b: (0.5 + 0.5) / (1 + 0.5) = 66.7%.
    assert result.corruption_errors["a"] == pytest.approx(60.0)
    assert result.corruption_errors["b"] == pytest.approx(200.0 / 3)
    assert result.mce == pytest.approx((60.0 + 200.0 / 3) / 2)
    assert result.mean_corruption_accuracy == pytest.approx(0.6)


def test_evaluate_corruptions_rejects_bad_arguments(mnist_model):
    model, x, y = mnist_model
    with pytest.raises(ValueError, match="name='snow'"):
        evaluate_corruptions(model, x, y, corruptions=["snow"])
    with pytest.raises(ValueError, match="severity=7"):
        evaluate_corruptions(model, x, y, severities=(1, 7))
    with pytest.raises(ValueError, match="corruptions=\\[\\]"):
        evaluate_corruptions(model, x, y, corruptions=[])
    with pytest.raises(ValueError, match="batch_size=0"):
        evaluate_corruptions(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match="48 images and 3 labels"):
        evaluate_corruptions(model, x, y[:3])
    with pytest.raises(TypeError, match="reference='resnet'"):
        evaluate_corruptions(model, x, y, reference="resnet")
    partial = CorruptionResult(0.5, {"fog": {1: 0.5}})
    with pytest.raises(ValueError, match="lacks corruption 'fog'.*\\[2\\]"):
        evaluate_corruptions(
            model,
            x,
            y,
            corruptions=["fog"],
            severities=(1, 2),
            reference=partial,
            verbose=False,
        )


def test_random_corruption_is_identity_at_inference(images):
    layer = RandomCorruption(probability=1.0, seed=0)
    np.testing.assert_array_equal(layer(images).numpy(), images)
    np.testing.assert_array_equal(layer(images, training=False).numpy(), images)


def test_random_corruption_changes_images_in_training(images):
    layer = RandomCorruption(
        corruptions=["gaussian_noise", "contrast"],
        severities=[5],
        probability=1.0,
        seed=0,
    )
    y = layer(images, training=True).numpy()
    assert y.shape == images.shape and 0.0 <= y.min() <= y.max() <= 1.0
    assert np.all(
        np.abs(y - images).reshape(len(images), -1).max(axis=1) > 0.01
    )
    half = RandomCorruption(
        corruptions=["gaussian_noise"], probability=0.5, seed=1
    )
    x = np.repeat(images, 20, axis=0)
    changed = np.any(
        (half(x, training=True).numpy() != x).reshape(len(x), -1), axis=1
    )
    assert 0.3 < changed.mean() < 0.7


def test_random_corruption_in_fit_and_serialization(images, tmp_path):
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            RandomCorruption(corruptions=["fog", "jpeg_compression"], seed=3),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(True))
    model.fit(images, np.array([0, 1] * 3), epochs=1, verbose=0)
    path = tmp_path / "augmented.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    layer = loaded.layers[0]
    assert isinstance(layer, RandomCorruption)
    assert layer.get_config() == model.layers[0].get_config()
    assert layer.corruptions == ("fog", "jpeg_compression")
    np.testing.assert_allclose(
        loaded.predict(images, verbose=0),
        model.predict(images, verbose=0),
        rtol=1e-6,
    )


def test_random_corruption_in_tf_data(images):
    layer = RandomCorruption(
        corruptions=["shot_noise"], probability=1.0, seed=0
    )
    dataset = (
        tf.data.Dataset.from_tensor_slices(images)
        .batch(3)
        .map(lambda x: layer(x, training=True))
    )
    out = np.concatenate([b.numpy() for b in dataset])
    assert out.shape == images.shape and np.abs(out - images).max() > 0.01


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"probability": 1.5}, ValueError, "probability=1.5"),
        ({"probability": -0.1}, ValueError, "probability=-0.1"),
        ({"corruptions": ["frost"]}, ValueError, "name='frost'"),
        ({"corruptions": ["fog", "fog"]}, ValueError, "twice"),
        ({"severities": [0]}, ValueError, "severity=0"),
        ({"severities": []}, ValueError, "severities=\\[\\]"),
        ({"seed": 1.5}, TypeError, "seed=1.5"),
    ],
)
def test_random_corruption_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        RandomCorruption(**kwargs)
