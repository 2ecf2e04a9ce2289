"""What retrofit hands over and refuses: serving shapes, missing data sets,
output directories that cannot be written."""

import keras
import numpy as np
import pytest
import requests
import tensorflow as tf
import tensorflow_datasets as tfds

from retrofit import data
from retrofit.cli import main
from retrofit.export import export_for_serving
from retrofit.placements import build_retrofit_model


def one_line_error(capsys, argv):
    status = main(list(argv))
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("retrofit: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    # A retrofitted model around a tiny stand-in for the backbone: the
    # serving signature's checks do not depend on it (`retrofit` exports
    # MobileNetV2 in tests/test_experiments.py, pretrained_backbone --quick).
    backbone = keras.Sequential(
        [keras.Input((None, None, 3)), keras.layers.Conv2D(4, 3)], name="tiny"
    )
    model = build_retrofit_model(backbone, (32, 32, 1), 10, units=8)
    path = export_for_serving(model, tmp_path_factory.mktemp("s") / "served")
    return model, tf.saved_model.load(path).signatures["serving_default"]


def test_serving_matches_the_model_on_the_right_shape(served):
    model, serve = served
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 1))
    result = serve(images=tf.constant(images, tf.uint8))
    expected = tf.nn.softmax(model(images.astype("float32") / 255.0))
    np.testing.assert_allclose(result["probabilities"], expected, atol=1e-5)
    np.testing.assert_array_equal(
        result["class_id"], np.argmax(expected, axis=1)
    )


@pytest.mark.parametrize("shape", [(2, 28, 28, 1), (2, 32, 32, 3)])
def test_serving_refuses_images_of_another_shape(served, shape):
    _, serve = served
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"should be a batch of uint8 images of shape \(batch, 32, 32, "
        r"1\); received a batch of shape",
    ):
        serve(images=tf.zeros(shape, tf.uint8))


def test_serving_an_empty_batch_gives_empty_outputs(served):
    _, serve = served
    result = serve(images=tf.zeros((0, 32, 32, 1), tf.uint8))
    assert result["probabilities"].shape == (0, 10)
    assert result["class_id"].shape == (0,)


def test_a_failed_download_is_one_line_naming_the_data_set(
    capsys, monkeypatch, tmp_path
):
    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError(
            "Failed to resolve 'storage.googleapis.com'"
        )

    monkeypatch.setattr(tfds, "load", offline)
    line = one_line_error(capsys, [
        "--backbone", "MobileNetV2", "--dataset", "cifar10",
        "--data-dir", str(tmp_path / "tfds"), "--out", str(tmp_path / "run"),
    ])
    assert "'cifar10'" in line and str(tmp_path / "tfds") in line
    assert "the download failed (ConnectionError" in line
    assert "--data-dir DIR" in line and "--data-path FILE.npz" in line
    assert not (tmp_path / "run").exists()


def test_no_download_and_nothing_on_disk_is_one_line(capsys, tmp_path):
    # The real tensorflow-datasets path: download=False and an empty dir.
    line = one_line_error(capsys, [
        "--backbone", "MobileNetV2", "--dataset", "mnist", "--no-download",
        "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"),
    ])
    assert f"data set 'mnist' is not available in {tmp_path}" in line
    assert "downloading is off" in line and "--data-dir DIR" in line


def test_tiny_imagenet_without_a_directory_or_download(
    capsys, monkeypatch, tmp_path
):
    line = one_line_error(capsys, [
        "--backbone", "MobileNetV2", "--dataset", "tiny_imagenet",
        "--no-download", "--out", str(tmp_path / "run"),
    ])
    assert "'tiny_imagenet'" in line and "--data-path PATH" in line

    def offline(self, url):
        raise requests.exceptions.ConnectionError("no route to host")

    monkeypatch.setattr(
        tfds.download.DownloadManager, "download_and_extract", offline
    )
    with pytest.raises(data.DataUnavailableError, match="downloading http"):
        data.tiny_imagenet(data_dir=str(tmp_path))


@pytest.mark.parametrize("kind", ["inside a file", "read-only"])
def test_an_output_directory_that_cannot_be_written_is_refused_first(
    capsys, monkeypatch, tmp_path, kind
):
    loads = []
    monkeypatch.setattr(
        data, "load", lambda *args, **kwargs: loads.append(args)
    )
    if kind == "inside a file":
        (tmp_path / "file").write_text("")
        out, reason = tmp_path / "file" / "run", "is a file"
    else:
        # /proc refuses new entries even to root, where chmod would not.
        out, reason = "/proc/keras-drelu-run", "cannot be written"
    line = one_line_error(capsys, [
        "--backbone", "MobileNetV2", "--dataset", "digits", "--weights",
        "none", "--out", str(out),
    ])
    assert reason in line
    assert loads == []  # refused before any data was loaded


def test_a_bad_command_line_prints_one_line_in_a_real_process(tmp_path):
    # The `python -m retrofit` entry point, in a process of its own:
    # TensorFlow's start-up lines must not bury the one-line error.
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "retrofit", "--backbone", "InceptionV4",
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "retrofit: error: unknown backbone 'InceptionV4'; did you mean "
        "InceptionV3, Xception, InceptionResNetV2?"
    ]


def test_evaluate_help_prints(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", "--help"])
    assert stop.value.code == 0
    assert "--resume" in capsys.readouterr().out
