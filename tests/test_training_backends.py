"""The training recipes on the JAX backend, in fresh interpreters.

The suite's own process runs TensorFlow; each test here starts Python with
`KERAS_BACKEND=jax` and TensorFlow blocked (`no_tensorflow`), so that
nothing on the JAX path can lean on it.
"""

import json

import numpy as np
import pytest
from no_tensorflow import BLOCK_TENSORFLOW

from keras_drelu.training import RECIPES

JAX = {"KERAS_BACKEND": "jax"}

# Each recipe's trainer, recording what its `training_batch` hands Keras'
# stateless step (in variables, the only way out of a jitted step), then
# steps of `train_on_batch` compared with what the step should have seen.
STEP_SCRIPT = BLOCK_TENSORFLOW + """
import json
import keras, numpy as np
from keras_drelu import DReLU
from keras_drelu.training import MTLAT, TRADES, AdversarialTraining
from keras_drelu.training import FastAdversarialTraining
from keras_drelu.training.trades import TRADESTargets

assert keras.backend.backend() == "jax"
keras.utils.set_random_seed(0)
N, SHAPE, CLASSES, EPS = 8, (2, 2, 1), 3, 0.1
x = np.random.default_rng(0).uniform(0.2, 0.8, (N, *SHAPE)).astype("float32")
y = np.arange(N) % CLASSES


def build():
    return keras.Sequential([
        keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(8),
        DReLU(initial_max_value=0.5), keras.layers.Dense(CLASSES),
    ])


def recorded(cls):
    class Recorded(cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            zeros = keras.initializers.Zeros()
            self.seen_inputs = self.add_weight(
                (N, *SHAPE), zeros, trainable=False)
            self.seen_adversarial = self.add_weight(
                (N, *SHAPE), zeros, trainable=False)
            self.seen_labels = self.add_weight(
                (N, CLASSES), zeros, trainable=False)
            self.seen_outputs = self.add_weight(
                (N, CLASSES), zeros, trainable=False)
            self.seen_eps = self.add_weight((), zeros, trainable=False)

        def training_batch(self, x, y, sample_weight=None):
            batch = super().training_batch(x, y, sample_weight)
            inputs, labels, _ = keras.utils.unpack_x_y_sample_weight(batch)
            if isinstance(labels, TRADESTargets):
                self.seen_adversarial.assign(labels.adversarial)
                labels = labels.labels
            if len(labels.shape) == 1:
                labels = keras.ops.one_hot(labels, CLASSES)
            self.seen_inputs.assign(inputs)
            self.seen_labels.assign(keras.ops.cast(labels, "float32"))
            self.seen_outputs.assign(self.classifier(x, training=False))
            self.seen_eps.assign(self.radius()[0])
            return batch

    return Recorded


def value(v):
    return np.asarray(keras.ops.convert_to_numpy(v))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def expected_loss(name, trainer, classifier):
    logits = lambda t: value(classifier(t, training=False))
    labels = value(trainer.seen_labels)
    inputs = value(trainer.seen_inputs)
    if name != "trades":
        p = softmax(logits(inputs))
        return float(np.mean(-np.sum(labels * np.log(p), axis=1)))
    p, q = softmax(logits(x)), softmax(logits(value(trainer.seen_adversarial)))
    ce = np.mean(-np.log(p[np.arange(N), y]))
    return float(ce + 6.0 * np.mean(np.sum(p * np.log(p / q), axis=1)))


RECIPES = {
    "pgd-at": (AdversarialTraining, dict(steps=2, step_size=0.02)),
    "fgsm-at": (FastAdversarialTraining, {}),
    "trades": (TRADES, dict(beta=6.0, steps=2, step_size=0.02)),
    "mtlat": (MTLAT, dict(steps=1, seed=0)),
}
out = {}
for name, (cls, kwargs) in RECIPES.items():
    classifier = build()
    trainer = recorded(cls)(
        classifier, eps=EPS, from_logits=True, eps_ramp_steps=4, **kwargs)
    # A learning rate of 0 first: the weights stay, the random states and
    # the step counter move.
    trainer.compile(keras.optimizers.SGD(0.0))
    seen, eps = [], []
    for _ in range(5):
        trainer.train_on_batch(x, y)
        seen.append(value(
            trainer.seen_adversarial if name == "trades"
            else trainer.seen_inputs
        ))
        eps.append(float(value(trainer.seen_eps)))
    trainer.optimizer.learning_rate.assign(0.5)
    trainer.train_on_batch(x, y)
    before = value(classifier(x, training=False))
    previous = [value(w) for w in classifier.weights]
    loss = float(trainer.train_on_batch(x, y, return_dict=True)["loss"])
    after = [value(w) for w in classifier.weights]
    classifier.set_weights(previous)
    changed = sum(
        float(np.abs(a - b).max()) for a, b in zip(after, previous))
    out[name] = dict(
        eps=eps,
        radius=float(np.abs(seen[-1] - x).max()),
        new_start=float(np.abs(seen[-1] - seen[-2]).max()),
        outputs=float(np.abs(value(trainer.seen_outputs) - before).max()),
        changed=changed,
        loss=loss,
        expected=expected_loss(name, trainer, classifier),
    )
print(json.dumps(out))
"""


def test_recipes_train_through_keras_stateless_step_on_jax(run_python):
    out = json.loads(run_python(STEP_SCRIPT, env=JAX).splitlines()[-1])
    assert set(out) == {
        name for name, recipe in RECIPES.items() if recipe.adversarial
    }
    for name, seen in out.items():
        # The radius ramps with the optimizer's step counter of each step.
        np.testing.assert_allclose(
            seen["eps"], [0.025, 0.05, 0.075, 0.1, 0.1], rtol=1e-5,
            err_msg=name,
        )
        # Each step draws new random numbers: its seed states move.
        assert seen["new_start"] > 1e-3, name
        # The batch is crafted with the weights of its own step, not with
        # those of the step traced first.
        assert seen["outputs"] < 1e-5, name
        assert seen["changed"] > 1e-3, name
        # Keras' step trains on that batch: its loss is the recipe's loss
        # of what `training_batch` returned.
        assert seen["loss"] == pytest.approx(seen["expected"], rel=1e-4), name
        if name != "mtlat":  # Mixup moves the images beyond the ball.
            assert 1e-3 < seen["radius"] <= 0.1 + 1e-6, name
