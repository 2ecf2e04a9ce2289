"""Tests of `retrofit.data`: every source, the splits, augmentation, mixing."""

import re

import keras
import numpy as np
import pytest
import sklearn.datasets
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from retrofit import data
from retrofit.data.augmentation import OPERATIONS
from retrofit.data.augmentation import PadAndCrop
from retrofit.data.augmentation import RandAugment


def _numpy(dataset):
    """All `(images, labels)` of a batched dataset, concatenated."""
    batches = list(dataset.as_numpy_iterator())
    return (
        np.concatenate([b[0] for b in batches]),
        np.concatenate([b[1] for b in batches]),
    )


def _coded_images(n, shape=(6, 6, 1)):
    """uint8 images whose first two pixels spell their index."""
    images = np.zeros((n, *shape), np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256
    images[:, 0, 1, 0] = np.arange(n) // 256
    return images


def _codes(images):
    pixels = np.rint(images[:, 0, :2, 0] * 255).astype(int)
    return pixels[:, 0] + 256 * pixels[:, 1]


def _save_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.fixture
def coded_npz(tmp_path):
    return _save_npz(
        tmp_path / "coded.npz",
        x_train=_coded_images(100),
        y_train=np.arange(100) % 5,
        x_test=_coded_images(30),
        y_test=np.arange(30) % 5,
    )


def _check_splits(splits, image_shape, num_classes, sizes):
    assert splits.info.image_shape == image_shape
    assert splits.info.num_classes == num_classes
    assert len(splits.info.class_names) == num_classes
    for split, size in zip(("train", "validation", "test"), sizes):
        images, labels = _numpy(getattr(splits, split))
        assert images.shape == (size, *image_shape), split
        assert images.dtype == np.float32 and labels.dtype == np.int64
        assert 0.0 <= images.min() and images.max() <= 1.0
        assert 0 <= labels.min() and labels.max() < num_classes


# tensorflow-datasets sources, on tfds' mock data: never the network.


@pytest.mark.parametrize(
    "name, image_shape, num_classes",
    [
        ("mnist", (28, 28, 1), 10),
        ("cifar10", (32, 32, 3), 10),
        ("cifar100", (32, 32, 3), 100),
    ],
)
def test_tfds_sources_on_mock_data(
    name, image_shape, num_classes, tmp_path, monkeypatch
):
    calls = []
    load = tfds.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs)
        return load(*args, **kwargs)

    monkeypatch.setattr(tfds, "load", recording_load)
    with tfds.testing.mock_data(num_examples=20):
        splits = data.load(
            name, batch_size=8, validation_split=0.25, seed=1,
            data_dir=str(tmp_path), download=False,
        )
        reference = tfds.as_numpy(
            load(name, split="test", as_supervised=True)
        )
        reference_images = np.stack([image for image, _ in reference])
    assert splits.info.name == name
    _check_splits(splits, image_shape, num_classes, (15, 5, 20))
    assert {call["split"] for call in calls} == {"train", "test"}
    assert all(
        call["data_dir"] == str(tmp_path) and call["download"] is False
        for call in calls
    )
    # The test split keeps tfds' order; uint8 pixels are divided by 255.
    images, _ = _numpy(splits.test)
    np.testing.assert_allclose(images * 255.0, reference_images, atol=1e-4)


# Tiny ImageNet.


@pytest.mark.shared_data
def test_tiny_imagenet_on_shared_mini_set(shared_data_dir):
    root = shared_data_dir / "tiny-imagenet-mini"
    splits = data.tiny_imagenet(root, batch_size=50)
    # 10 classes, 20 training images each (80/20 split), 50 val images each.
    _check_splits(splits, (64, 64, 3), 10, (160, 40, 500))
    assert splits.info.class_names[0] == "goldfish"
    wnids = (root / "wnids.txt").read_text().split()
    annotations = (root / "val" / "val_annotations.txt").read_text()
    annotations = [line.split("\t") for line in annotations.splitlines()]
    images, labels = _numpy(splits.test)
    assert labels.tolist() == [wnids.index(a[1]) for a in annotations]
    # Decoded pixels agree with PIL's decoder.
    for index in (0, 123):
        with Image.open(root / "val" / "images" / annotations[index][0]) as im:
            expected = np.asarray(im.convert("RGB"), np.float32) / 255.0
        assert np.abs(images[index] - expected).mean() < 2 / 255
    train_labels = np.concatenate(
        [_numpy(splits.train)[1], _numpy(splits.validation)[1]]
    )
    assert np.bincount(train_labels).tolist() == [20] * 10


def _make_tiny_imagenet(root, wnids=("n001", "n002", "n003"), per_class=4):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text(
        "".join(f"{w}\tthing {i}, other name\n" for i, w in enumerate(wnids))
    )
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for label, wnid in enumerate(wnids):
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(per_class):
            # One greyscale JPEG per class, as in the real set.
            mode, shape = ("L", (64, 64)) if i == 0 else ("RGB", (64, 64, 3))
            pixels = np.full(shape, 40 * label + 20, np.uint8)
            pixels += rng.integers(0, 5, shape, dtype=np.uint8)
            Image.fromarray(pixels, mode).save(folder / f"{wnid}_{i}.JPEG")
        name = f"val_{label}.JPEG"
        Image.fromarray(np.full((64, 64, 3), 40 * label + 20, np.uint8)).save(
            root / "val" / "images" / name
        )
        lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def test_tiny_imagenet_on_made_tree(tmp_path):
    root = _make_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    # The folder holding `tiny-imagenet-200` is accepted too.
    splits = data.tiny_imagenet(tmp_path, batch_size=5, validation_split=0.25)
    _check_splits(splits, (64, 64, 3), 3, (9, 3, 3))
    assert splits.info.class_names == ("thing 0", "thing 1", "thing 2")
    images, labels = _numpy(splits.train)
    # Each class was drawn at grey level 40 * label + 20 (+ noise < 5).
    np.testing.assert_allclose(
        images.mean(axis=(1, 2, 3)) * 255, 40 * labels + 22, atol=3
    )
    limited = data.tiny_imagenet(root, limit=4, validation_split=0.5)
    _check_splits(limited, (64, 64, 3), 3, (2, 2, 3))


def test_tiny_imagenet_downloads_with_tfds_manager(tmp_path, monkeypatch):
    _make_tiny_imagenet(tmp_path / "extracted" / "tiny-imagenet-200")
    seen = {}

    def download_and_extract(self, url):
        seen["url"] = url
        seen["download_dir"] = str(self._download_dir)
        return tmp_path / "extracted"

    monkeypatch.setattr(
        tfds.download.DownloadManager, "download_and_extract",
        download_and_extract,
    )
    splits = data.tiny_imagenet(data_dir=str(tmp_path / "tfds"))
    assert splits.info.num_classes == 3
    assert seen["url"] == "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
    assert seen["download_dir"] == str(tmp_path / "tfds" / "downloads")
    with pytest.raises(data.DataUnavailableError, match="no directory was given and downloading is off"):
        data.tiny_imagenet(download=False)


def test_tiny_imagenet_malformed_trees(tmp_path):
    with pytest.raises(FileNotFoundError, match="No Tiny ImageNet directory"):
        data.tiny_imagenet(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no wnids.txt"):
        data.tiny_imagenet(tmp_path / "empty")

    root = _make_tiny_imagenet(tmp_path / "a")
    (root / "wnids.txt").write_text("n001\nn002\nn003\nn004\n")
    with pytest.raises(ValueError, match="'n004' .* has no training images"):
        data.tiny_imagenet(root)

    root = _make_tiny_imagenet(tmp_path / "b")
    annotations = root / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text() + "val_9.JPEG\tn999\n")
    with pytest.raises(ValueError, match="Line 4 of .*n999"):
        data.tiny_imagenet(root)

    annotations.write_text("missing.JPEG\tn001\n")
    with pytest.raises(FileNotFoundError, match="names a missing image"):
        data.tiny_imagenet(root)

    annotations.unlink()
    with pytest.raises(FileNotFoundError, match="val_annotations.txt"):
        data.tiny_imagenet(root)

    (root / "wnids.txt").write_text("\n")
    with pytest.raises(ValueError, match="lists no classes"):
        data.tiny_imagenet(root)


# npz files.


@pytest.mark.shared_data
def test_npz_reads_shared_mnist(shared_data_dir):
    path = shared_data_dir / "mnist.npz"
    splits = data.npz(path, batch_size=100)
    assert splits.info.name == "mnist"
    assert splits.info.image_shape == (28, 28, 1)
    assert splits.info.num_classes == 10
    assert splits.train.cardinality() == 540  # 54000 of 60000 in batches
    images, labels = next(iter(splits.test))
    with np.load(path) as raw:
        np.testing.assert_allclose(
            images.numpy()[..., 0], raw["x_test"][:100] / 255.0, atol=1e-6
        )
        assert labels.numpy().tolist() == raw["y_test"][:100].tolist()


@pytest.mark.shared_data
def test_npz_reads_shared_cifar10_subset(shared_data_dir):
    splits = data.npz(
        shared_data_dir / "cifar10-subset.npz", limit=200, batch_size=64
    )
    _check_splits(splits, (32, 32, 3), 10, (180, 20, 200))
    assert splits.info.class_names[:2] == ("airplane", "automobile")


def test_npz_uint8_and_float_files(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(12, 5, 5, 3)).astype(np.float64)
    path = _save_npz(
        tmp_path / "float.npz", x_train=x, y_train=np.arange(12) % 3,
        x_test=x[:4], y_test=np.arange(4)[:, None] % 3,
    )
    splits = data.npz(path, batch_size=4, validation_split=0.25)
    _check_splits(splits, (5, 5, 3), 3, (9, 3, 4))
    # Float images are taken as they are, in float32.
    np.testing.assert_allclose(_numpy(splits.test)[0], x[:4], rtol=1e-6)
    assert _numpy(splits.test)[1].tolist() == [0, 1, 2, 0]


def test_npz_validation_split_is_seeded_and_disjoint(coded_npz):
    splits = data.npz(coded_npz, batch_size=16, validation_split=0.2, seed=3)
    train_images, train_labels = _numpy(splits.train)
    train = _codes(train_images)
    validation = _codes(_numpy(splits.validation)[0])
    assert len(validation) == 20 and len(train) == 80
    assert sorted(np.concatenate([train, validation])) == list(range(100))
    # Labels travel with their images.
    assert (train_labels == train % 5).all()
    # Train is reshuffled every epoch; the validation split is fixed.
    assert (train != _codes(_numpy(splits.train)[0])).any()
    assert (validation == _codes(_numpy(splits.validation)[0])).all()
    # Test keeps the file's order.
    assert _codes(_numpy(splits.test)[0]).tolist() == list(range(30))
    again = data.npz(coded_npz, batch_size=16, validation_split=0.2, seed=3)
    other = data.npz(coded_npz, batch_size=16, validation_split=0.2, seed=4)
    assert (validation == _codes(_numpy(again.validation)[0])).all()
    assert set(validation) != set(_codes(_numpy(other.validation)[0]))


def test_limit_and_no_validation(coded_npz):
    splits = data.npz(coded_npz, limit=10, validation_split=0.0)
    assert splits.validation is None
    train = _codes(_numpy(splits.train)[0])
    test = _codes(_numpy(splits.test)[0])
    assert len(set(train)) == 10 and len(set(test)) == 10
    assert set(train) != set(range(10))  # a random subset, not the first 10


def _assert_one_line_error(error_type, match, path, **kwargs):
    with pytest.raises(error_type, match=match) as info:
        data.npz(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_npz_malformed_files(tmp_path):
    x, y = _coded_images(8), np.arange(8) % 2
    good = {"x_train": x, "y_train": y, "x_test": x, "y_test": y}
    cases = [
        ({"x_train": x, "y_train": y},
         "lacks the arrays \\['x_test', 'y_test'\\]"),
        ({**good, "x_train": x.astype(np.int16)},
         "uint8 in \\[0, 255\\] or float"),
        ({**good, "x_train": x + 2.0}, "should lie in \\[0, 1\\]"),
        ({**good, "x_test": np.full(x.shape, np.nan)}, "non-finite"),
        ({**good, "x_train": x[:, :, :, :, None]}, "should have shape"),
        ({**good, "y_train": y[:5]}, "8 images but 5 labels"),
        ({**good, "y_train": y.astype(float)}, "should be integers"),
        ({**good, "y_test": y - 1}, "non-negative"),
        ({**good, "x_test": _coded_images(8, (7, 6, 1))}, "differ in shape"),
        ({**good, "class_names": np.array(["a"])},
         "names 1 classes but has label 1"),
        ({**good, "x_train": np.array([None] * 8)}, "not a readable .npz"),
    ]
    for number, (arrays, match) in enumerate(cases):
        path = _save_npz(tmp_path / f"bad{number}.npz", **arrays)
        _assert_one_line_error(ValueError, match, path)
    (tmp_path / "text.npz").write_text("not an archive")
    _assert_one_line_error(
        ValueError, "not a readable .npz", tmp_path / "text.npz"
    )
    np.save(tmp_path / "single.npy", x)
    _assert_one_line_error(ValueError, "single array", tmp_path / "single.npy")
    _assert_one_line_error(
        FileNotFoundError, "No .npz file", tmp_path / "absent.npz"
    )


# digits.


def test_digits_sizes_channels_and_pixels():
    splits = data.digits(image_size=8, batch_size=256)
    # 1797 images: 359 test, 144 validation, 1294 train.
    _check_splits(splits, (8, 8, 1), 10, (1294, 144, 359))
    pixels, targets = sklearn.datasets.load_digits(return_X_y=True)
    originals = {row.tobytes(): t for row, t in zip(pixels / 16.0, targets)}
    images, labels = _numpy(splits.test)
    # At 8x8 every image is one of scikit-learn's, scaled from [0, 16].
    for image, label in zip(images.astype(np.float64), labels):
        key = np.round(image.reshape(64) * 16) / 16
        assert originals[key.tobytes()] == label

    colour = data.digits(image_size=20, channels=3, limit=50, batch_size=50)
    _check_splits(colour, (20, 20, 3), 10, (45, 5, 50))
    image = _numpy(colour.test)[0][0]
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_size": 0}, "image_size"),
        ({"channels": 2}, "channels"),
        ({"test_split": 1.0}, "test_split"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"validation_split": 1.0}, "validation_split=1.0"),
        ({"seed": "a"}, "seed='a'"),
        ({"limit": 0}, "limit=0"),
        ({"augment": "sharpen"}, "augment='sharpen'"),
        ({"augment": 3}, "augment=3"),
        ({"limit": 1, "validation_split": 0.5}, "needs at least one example"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.digits(**kwargs)


def test_load_dispatch_errors():
    assert set(data.SOURCES) == {
        "mnist", "cifar10", "cifar100", "tiny_imagenet", "digits", "npz"
    }
    with pytest.raises(ValueError, match="Known sources: cifar10, cifar100"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="pass path="):
        data.load("npz")


# Augmentation.


def test_flip_augments_train_only(coded_npz):
    plain = data.digits(image_size=8, batch_size=64, seed=5)
    flipped = data.digits(image_size=8, batch_size=64, seed=5, augment="flip")
    x, _ = next(iter(plain.train))
    x_aug, _ = next(iter(flipped.train))
    same = np.all(x.numpy() == x_aug.numpy(), axis=(1, 2, 3))
    mirrored = np.all(x.numpy()[:, :, ::-1] == x_aug.numpy(), axis=(1, 2, 3))
    assert (same | mirrored).all() and 0 < mirrored.sum() < len(x)
    np.testing.assert_array_equal(
        _numpy(plain.test)[0], _numpy(flipped.test)[0]
    )


@pytest.mark.parametrize(
    "augment", ["flip-crop", "randaugment", keras.layers.RandomFlip()]
)
def test_augmentations_keep_shape_and_range(augment):
    splits = data.digits(
        image_size=16, channels=3, augment=augment, batch_size=32, limit=64
    )
    images, labels = next(iter(splits.train))
    assert images.shape == (32, 16, 16, 3) and images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= 0.0
    assert float(tf.reduce_max(images)) <= 1.0


@pytest.mark.parametrize("augment", ["flip", "flip-crop", "randaugment"])
def test_the_same_seed_gives_the_same_augmented_batches(augment):
    # Augmented in parallel, batches drew from the layers' generators in
    # whatever order the threads ran: every run saw other data.
    def epoch(seed):
        splits = data.digits(image_size=16, batch_size=32, seed=seed,
                             augment=augment, limit=256)
        return _numpy(splits.train)[0]

    first = epoch(3)
    np.testing.assert_array_equal(epoch(3), first)
    assert not np.array_equal(epoch(4), first)


def test_pad_and_crop_shifts_each_image_by_its_own_offset():
    rng = np.random.default_rng(0)
    images = rng.random((2000, 8, 8, 2)).astype("float32")
    shifted = PadAndCrop(4, seed=1)(images).numpy()
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    # Each output is the padded image cropped at exactly one of the 81
    # offsets (the images are random: no two crops are equal).
    matches = np.stack([
        np.all(padded[:, i:i + 8, j:j + 8] == shifted, axis=(1, 2, 3))
        for i in range(9) for j in range(9)
    ], axis=1)
    assert (matches.sum(axis=1) == 1).all()
    counts = np.bincount(matches.argmax(axis=1), minlength=81)
    # Uniform over the offsets: about 25 images each.
    assert counts.min() >= 8 and counts.max() <= 50
    # Within one batch the images move apart, unlike keras.layers.RandomCrop.
    assert len(set(matches[:32].argmax(axis=1))) > 10
    np.testing.assert_array_equal(PadAndCrop(4, seed=1)(images).numpy(), shifted)


def _adds(amount):
    return lambda images: images + amount


def test_randaugment_draws_the_operations_of_each_image():
    # Operation k adds 10**k: each image's sum tells which it went through.
    operations = [_adds(10.0 ** k) for k in range(3)]
    images = np.zeros((3000, 2, 2, 1), "float32")
    once = RandAugment(num_ops=1, seed=4, operations=operations)(images)
    once = once.numpy()[:, 0, 0, 0]
    counts = {value: int((once == value).sum()) for value in (1.0, 10.0, 100.0)}
    assert sum(counts.values()) == 3000
    assert min(counts.values()) > 850  # uniform: about 1000 each
    # Within one batch the images go different ways (keras.layers.RandAugment
    # applies the same operations to every image of a batch).
    assert len(set(once[:32])) == 3
    twice = RandAugment(num_ops=2, seed=4, operations=operations)(images)
    twice = twice.numpy()[:, 0, 0, 0]
    # Two rounds: two operations per image, the same one twice allowed.
    digits = np.stack([(twice // 10.0 ** k) % 10 for k in range(3)], axis=1)
    assert (digits.sum(axis=1) == 2).all() and (digits == 2).any()
    np.testing.assert_array_equal(
        RandAugment(num_ops=2, seed=4, operations=operations)(images).numpy()[
            :, 0, 0, 0], twice
    )


def test_the_randaugment_preset_draws_per_image():
    from retrofit.data.augmentation import PRESETS

    (step,) = PRESETS["randaugment"](16, 16, seed=3)
    assert isinstance(step, RandAugment)
    assert (step.num_ops, len(step.operations)) == (2, len(OPERATIONS))


def test_randaugment_draws_anew_for_each_batch_of_a_pipeline():
    # Keras 3.8 to 3.10 drew RandAugment's operations once, when tf.data
    # traced the layer: every batch then went through the same ones.
    augment = RandAugment(
        num_ops=1, seed=0, operations=[_adds(10.0 ** k) for k in range(3)]
    )
    batches = tf.data.Dataset.from_tensor_slices(
        np.zeros((64, 2, 2, 1), "float32")
    ).batch(4).map(augment)
    firsts = [float(batch[0, 0, 0, 0]) for batch in batches]
    assert len(set(firsts)) == 3


def test_randaugment_operations_keep_shape_dtype_and_range():
    images = np.random.default_rng(0).random((8, 16, 16, 3), "float32")
    for name in OPERATIONS:
        augment = RandAugment(
            seed=1, num_ops=1, operations=[OPERATIONS[name](0.5, (0.0, 1.0), 1)],
        )
        out = augment(images).numpy()
        assert out.shape == images.shape and out.dtype == np.float32, name
        assert np.isfinite(out).all(), name
        assert out.min() >= -1e-6 and out.max() <= 1.0 + 1e-6, name


@pytest.mark.parametrize("arguments, message", [
    (dict(num_ops=0), "num_ops=0"),
    (dict(factor=1.5), "factor=1.5"),
    (dict(factor=0), "factor=0"),
    (dict(operations=[]), "operations=[]"),
])
def test_randaugment_refuses_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        RandAugment(**arguments)


@pytest.mark.parametrize("pad", [0, -1, 2.0, True])
def test_pad_and_crop_refuses_a_bad_pad(pad):
    with pytest.raises(ValueError, match=f"pad={pad!r}"):
        PadAndCrop(pad, seed=0)


def test_callable_augmentation_is_clipped():
    splits = data.digits(image_size=8, augment=lambda x: x * 4.0 - 1.0)
    images, _ = next(iter(splits.train))
    assert float(tf.reduce_max(images)) == 1.0
    assert float(tf.reduce_min(images)) == 0.0


# Generated-data mixing.


def test_mix_generated_keeps_epoch_and_fraction(coded_npz, tmp_path):
    splits = data.npz(coded_npz, batch_size=10, validation_split=0.0)
    generated = _save_npz(
        tmp_path / "generated.npz",
        image=np.full((40, 6, 6, 1), 255, np.uint8),
        label=np.full(40, 4),
    )
    mixed = data.mix_generated(splits.train, generated, original_fraction=0.3)
    assert mixed.cardinality() == splits.train.cardinality() == 10
    epoch = list(mixed.as_numpy_iterator())
    assert len(epoch) == 10
    originals = []
    for images, labels in epoch:
        assert images.shape == (10, 6, 6, 1) and images.dtype == np.float32
        is_generated = images[:, 5, 5, 0] == 1.0
        assert is_generated.sum() == 7
        assert (labels[is_generated] == 4).all()
        originals += _codes(images[~is_generated]).tolist()
    # 30 distinct originals, with their labels, drawn anew every epoch.
    assert len(set(originals)) == 30
    second = [
        code for images, _ in mixed.as_numpy_iterator()
        for code in _codes(images[images[:, 5, 5, 0] < 1.0])
    ]
    assert set(second) != set(originals)


def test_mix_generated_errors(coded_npz, tmp_path):
    train = data.npz(coded_npz, batch_size=10).train
    wrong_shape = _save_npz(
        tmp_path / "g.npz", image=np.zeros((4, 8, 8, 1), np.uint8),
        label=np.zeros(4, int),
    )
    with pytest.raises(ValueError, match="shape \\(N, \\*\\(6, 6, 1\\)\\)"):
        data.mix_generated(train, wrong_shape)
    no_labels = _save_npz(tmp_path / "h.npz", image=np.zeros((4, 6, 6, 1)))
    with pytest.raises(ValueError, match="lacks the arrays \\['label'\\]"):
        data.mix_generated(train, no_labels)
    with pytest.raises(ValueError, match="original_fraction=1.0"):
        data.mix_generated(train, no_labels, original_fraction=1.0)
    with pytest.raises(ValueError, match="known length"):
        data.mix_generated(train.repeat(), no_labels)
