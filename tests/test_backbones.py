import keras
import numpy as np
import pytest

from retrofit.backbones import BACKBONES
from retrofit.backbones import BackboneError
from retrofit.backbones import BackbonePreprocessing
from retrofit.backbones import build_backbone
from retrofit.backbones import get_backbone
from retrofit.backbones import input_size


def test_registry_covers_every_keras_application():
    classifiers = {name for name in dir(keras.applications) if name[0].isupper()}
    assert set(BACKBONES) == classifiers
    for entry in BACKBONES.values():
        assert callable(entry.constructor)
        assert callable(entry.preprocess_input)


def test_lookup_is_case_insensitive_and_suggests():
    assert get_backbone("resnet50").name == "ResNet50"
    with pytest.raises(BackboneError, match="did you mean InceptionV3"):
        get_backbone("InceptionV4")
    with pytest.raises(BackboneError, match="retrofit backbones"):
        get_backbone("zzzz")


@pytest.mark.parametrize(
    "name, bgr_mean_sub, scale, mean, std",
    [
        ("ResNet50", True, None, None, None),
        ("MobileNetV2", False, "tf", None, None),
        ("DenseNet121", False, "torch", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ("EfficientNetB0", False, "identity", None, None),
    ],
)
def test_preprocessing_matches_each_convention(name, bgr_mean_sub, scale, mean, std):
    x = np.random.default_rng(0).uniform(size=(2, 4, 4, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(BackbonePreprocessing(name)(x))
    if bgr_mean_sub:
        expected = x[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68])
    elif scale == "tf":
        expected = x * 2.0 - 1.0
    elif scale == "torch":
        expected = (x - np.array(mean)) / np.array(std)
    else:
        expected = x * 255.0
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


def test_preprocessing_serializes():
    layer = BackbonePreprocessing("InceptionV3", name="pre")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert restored.backbone == "InceptionV3"


def test_input_size_rules():
    assert input_size(get_backbone("InceptionV3"), 32, None) == 75
    assert input_size(get_backbone("MobileNetV2"), 64, None) == 64
    assert input_size(get_backbone("NASNetMobile"), 32, "imagenet") == 224
    assert input_size(get_backbone("NASNetMobile"), 32, None) == 32


@pytest.mark.parametrize("name, size", [("InceptionV3", 75), ("Xception", 71)])
def test_min_size_matches_keras(name, size):
    entry = get_backbone(name)
    assert entry.min_size == size
    assert build_backbone(entry, size, weights=None).output.shape[-1] > 0
    with pytest.raises(BackboneError, match=f"at least {size}x{size}"):
        build_backbone(entry, size - 1, weights=None)


def test_weights_file_that_fits_and_one_that_does_not(tmp_path):
    mobilenet = get_backbone("MobileNetV2")
    source = build_backbone(mobilenet, 32, weights=None)
    path = tmp_path / "mobilenet.weights.h5"
    source.save_weights(path)
    loaded = build_backbone(mobilenet, 32, weights=str(path))
    np.testing.assert_array_equal(
        loaded.get_weights()[0], source.get_weights()[0]
    )
    with pytest.raises(BackboneError, match="does not fit ResNet50"):
        build_backbone(get_backbone("ResNet50"), 32, weights=str(path))
    with pytest.raises(BackboneError, match="does not exist"):
        build_backbone(mobilenet, 32, weights=str(tmp_path / "missing.weights.h5"))


def test_failed_download_suggests_alternatives(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://example: None -- offline")

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    with pytest.raises(BackboneError, match="--weights none") as error:
        build_backbone(get_backbone("MobileNetV2"), 32, weights="imagenet")
    assert "\n" not in str(error.value)


def test_size_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="size=32.5"):
        build_backbone(get_backbone("MobileNetV2"), 32.5, weights=None)
