import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_drelu.training import MTLAT
from keras_drelu.training import RECIPES
from keras_drelu.training import train

CLASSES = 4


def _classifier(softmax=True):
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((4, 4, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(CLASSES, activation="softmax" if softmax else None),
    ])


def _images(n=16, low=0.0, high=1.0):
    rng = np.random.default_rng(0)
    return rng.uniform(low, high, size=(n, 4, 4, 1)).astype("float32")


def _labels(n=16):
    return np.arange(n) % CLASSES


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_perturbed_inputs_stay_within_eps_of_mixed_inputs(norm):
    eps = 0.1
    trainer = MTLAT(_classifier(), eps=eps, steps=3, norm=norm, seed=0)
    x = _images()
    x_mix, y_mix = trainer.mix(tf.constant(x), _labels())
    targets = trainer.random_targets(y_mix)
    x_adv = trainer.targeted_inputs(x_mix, targets).numpy()
    delta = (x_adv - x_mix.numpy()).reshape(len(x), -1)
    size = np.abs(delta).max(axis=1) if norm == "linf" else (
        np.linalg.norm(delta, axis=1)
    )
    assert np.all(size <= eps + 1e-5)
    assert np.all(size > 0)
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


@pytest.mark.parametrize("from_logits", [False, True])
def test_targeted_step_lowers_the_loss_toward_the_target(from_logits):
    classifier = _classifier(softmax=not from_logits)
    trainer = MTLAT(classifier, eps=0.05, from_logits=from_logits)
    x = _images(low=0.3, high=0.7)
    targets = tf.constant((_labels() + 1) % CLASSES, tf.int32)

    def target_loss(images):
        return keras.losses.sparse_categorical_crossentropy(
            targets, classifier(images), from_logits=from_logits
        ).numpy()

    x_adv = trainer.targeted_inputs(tf.constant(x), targets)
    np.testing.assert_array_less(target_loss(x_adv), target_loss(x))


def test_labels_are_mixed_soft_labels():
    trainer = MTLAT(_classifier(), eps=0.1, alpha=1.0, seed=3)
    assert isinstance(trainer.mixup, keras.layers.MixUp)
    labels = _labels()
    # Each image is the constant c_k of its class k, so a mixed image must be
    # the mixture of the constants its soft label names.
    constants = np.array([0.1, 0.4, 0.7, 0.9], "float32")
    x = np.broadcast_to(
        constants[labels][:, None, None, None], (16, 4, 4, 1)
    ).astype("float32")
    x_mix, y_mix = trainer.mix(tf.constant(x), labels)
    x_mix, y_mix = x_mix.numpy(), y_mix.numpy()
    assert y_mix.shape == (16, CLASSES)
    np.testing.assert_allclose(y_mix.sum(axis=1), 1.0, atol=1e-6)
    assert np.all(y_mix >= 0) and np.all((y_mix > 1e-6).sum(axis=1) <= 2)
    assert np.any(y_mix.max(axis=1) < 0.99)
    np.testing.assert_allclose(x_mix[:, 0, 0, 0], y_mix @ constants, atol=1e-5)


def test_targets_differ_from_the_label_and_weigh_in_the_soft_label():
    trainer = MTLAT(_classifier(), eps=0.1, target_weight=0.3, seed=1)
    y = tf.one_hot(np.arange(400) % CLASSES, CLASSES)
    targets = trainer.random_targets(y).numpy()
    assert np.all(targets != np.arange(400) % CLASSES)
    assert set(targets) == set(range(CLASSES))
    _, y_adv = trainer.perturbed_batch(tf.constant(_images()), _labels())
    y_adv = y_adv.numpy()
    np.testing.assert_allclose(y_adv.sum(axis=1), 1.0, atol=1e-6)
    assert np.all(y_adv.max(axis=1) >= 0.3 - 1e-6)


def test_default_target_weight_and_steps_follow_the_paper():
    trainer = MTLAT(_classifier(), eps=8 / 255)
    assert trainer.steps == 1
    assert trainer.target_weight == pytest.approx(8 / 255)
    assert trainer.step_size == pytest.approx(2.5 * 8 / 255)


def test_train_recipe_mtlat_saves_the_classifier_without_wrapper(tmp_path):
    assert "mtlat" in RECIPES
    x = _images(32)
    data = tf.data.Dataset.from_tensor_slices((x, _labels(32))).batch(8)
    result = train(
        _classifier, data, data, recipe="mtlat", epochs=2, eps=0.1,
        attack_steps=2, mixup_alpha=0.4, natural_epochs=1, seed=0,
        default_callbacks=False, verbose=0,
    )
    model = result.model
    assert type(model) is keras.Sequential
    assert len(result.history["val_accuracy"]) == 3
    path = tmp_path / "classifier.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), model.predict(x, verbose=0),
        atol=1e-6,
    )


def test_config_round_trip():
    trainer = MTLAT(
        _classifier(), eps=0.1, alpha=0.5, target_weight=0.2, steps=2, seed=7
    )
    clone = MTLAT.from_config(trainer.get_config())
    assert (clone.eps, clone.alpha, clone.target_weight, clone.steps,
            clone.seed) == (0.1, 0.5, 0.2, 2, 7)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"eps": 0}, "eps=0"),
        ({"eps": 0.1, "alpha": -1}, "alpha=-1"),
        ({"eps": 0.1, "target_weight": 1.5}, "target_weight=1.5"),
        ({"eps": 0.1, "steps": 0}, "steps=0"),
        ({"eps": 0.1, "seed": "a"}, "seed='a'"),
        ({"eps": 0.1, "norm": "l1"}, "norm='l1'"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MTLAT(_classifier(), **kwargs)


def test_train_refuses_bad_mtlat_arguments():
    data = tf.data.Dataset.from_tensor_slices((_images(), _labels())).batch(8)
    with pytest.raises(ValueError, match="eps=None"):
        train(_classifier, data, recipe="mtlat", epochs=1)
    with pytest.raises(ValueError, match="mixup_alpha=0.2"):
        train(_classifier, data, recipe="pgd-at", epochs=1, eps=0.1,
              mixup_alpha=0.2)
    with pytest.raises(ValueError, match="beta=1.0"):
        train(_classifier, data, recipe="mtlat", epochs=1, eps=0.1, beta=1.0)
