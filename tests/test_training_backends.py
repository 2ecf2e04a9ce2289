"""The training recipes on the JAX backend, in a fresh interpreter.

The suite's own process runs TensorFlow; the tests here read what one
Python started with `KERAS_BACKEND=jax` and TensorFlow blocked
(`blocked_imports`) printed, so that nothing on the JAX path can lean on
it. Each test's script runs there in a namespace of its own (`jax_runs`).
"""

import contextlib
import inspect
import io
import json

import keras
import numpy as np
import pytest
from blocked_imports import BLOCK_TENSORFLOW

from keras_drelu import DReLU
from keras_drelu.training import RECIPES

JAX = {"KERAS_BACKEND": "jax"}

# Each recipe's trainer, recording what its `training_batch` hands Keras'
# stateless step (in variables, the only way out of a jitted step), then
# steps of `train_on_batch` compared with what the step should have seen.
STEP_SCRIPT = """
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


def test_recipes_train_through_keras_stateless_step_on_jax(jax_runs):
    out = jax_runs["step"]
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


# The same recipes, data, seed and initial weights on either backend:
# digits, a D-ReLU network, then clean and PGD accuracy on held-out digits.
COMPARE_SCRIPT = """
import json
import keras, numpy as np
from sklearn.datasets import load_digits
from keras_drelu import DReLU
from keras_drelu.attacks import PGD
from keras_drelu.training import train

digits = load_digits()
x = (digits.images / 16.0).astype("float32")[..., None]
y = digits.target.astype("int32")
# 15 batches of 64: no smaller last batch, for which JAX would compile
# each recipe's step a second time.
train_data, test = (x[:960], y[:960]), (x[1400:1700], y[1400:1700])


def build():
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(64),
        DReLU(initial_max_value=1.0), keras.layers.Dense(10),
    ])
    # The same initial weights on both backends.
    with np.load(WEIGHTS) as weights:
        model.set_weights([weights[f"arr_{i}"] for i in range(len(weights))])
    return model


def accuracy(model, images):
    logits = keras.ops.convert_to_numpy(model(images, training=False))
    return float(np.mean(np.argmax(logits, axis=1) == test[1]))


out = {"backend": keras.backend.backend()}
for recipe, settings in {RECIPES!r}.items():
    result = train(
        build, train_data, recipe=recipe, epochs=4, batch_size=64, seed=0,
        optimizer=keras.optimizers.Adam(0.01), default_callbacks=False,
        verbose=0, **settings)
    model = result.model
    x_adv = PGD(model, eps=0.1, steps=10, seed=0).generate(*test)
    out[recipe] = dict(
        loss=result.history["loss"], clean=accuracy(model, test[0]),
        robust=accuracy(model, x_adv))
print(json.dumps(out))
"""

COMPARED = {
    "standard": {},
    "pgd-at": {"eps": 0.1, "attack_steps": 5},
    "fgsm-at": {"eps": 0.1},
    "trades": {"eps": 0.1, "attack_steps": 5},
    "mtlat": {"eps": 0.1},
}


@pytest.fixture(scope="module")
def compare_script(tmp_path_factory):
    """`COMPARE_SCRIPT` filled in, with initial weights made here."""
    keras.utils.set_random_seed(0)
    initial = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(64),
        DReLU(initial_max_value=1.0), keras.layers.Dense(10),
    ])
    path = tmp_path_factory.mktemp("compare") / "initial.npz"
    np.savez(path, *initial.get_weights())
    return COMPARE_SCRIPT.replace("{RECIPES!r}", repr(COMPARED)).replace(
        "WEIGHTS", repr(str(path))
    )


@pytest.mark.slow
def test_recipes_on_jax_train_as_on_tensorflow(compare_script, jax_runs):
    # TensorFlow in this process (the suite's backend); JAX in a fresh one
    # without TensorFlow.
    runs = {"tensorflow": run_here(compare_script), "jax": jax_runs["compare"]}
    print(json.dumps(runs))
    for backend, run in runs.items():
        assert run.pop("backend") == backend
        for recipe, seen in run.items():
            assert seen["loss"][-1] < 0.8 * seen["loss"][0], (backend, recipe)
            assert seen["clean"] > 0.7, (backend, recipe)
        # Adversarial training withstands PGD better than natural training.
        for recipe in ("pgd-at", "fgsm-at", "trades"):
            assert run[recipe]["robust"] > run["standard"]["robust"] + 0.03, (
                backend, recipe
            )
    # The batch order and the attacks' random starts differ between
    # backends: close, not equal (over seeds 1 to 3, PGD accuracies of one
    # backend move by up to 5 points).
    for recipe in COMPARED:
        for key in ("clean", "robust"):
            assert runs["jax"][recipe][key] == pytest.approx(
                runs["tensorflow"][recipe][key], abs=0.1
            ), (recipe, key)


# The same training on one device, then split over two host devices by
# Keras' own data parallelism.
DATA_PARALLEL_SCRIPT = """
import json
import jax, keras, numpy as np
from sklearn.datasets import load_digits
from keras_drelu import DReLU
from keras_drelu.training import train

assert len(jax.devices()) == 2
digits = load_digits()
x = (digits.images / 16.0).astype("float32")[..., None][:256]
y = digits.target.astype("int32")[:256]


def build():
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(32),
        DReLU(initial_max_value=1.0), keras.layers.Dense(10),
    ])


out = {}
for devices, distribution in ((1, None), (2, keras.distribution.DataParallel())):
    keras.distribution.set_distribution(distribution)
    for recipe in ("pgd-at", "trades"):
        result = train(
            build, (x, y), recipe=recipe, eps=0.1, attack_steps=3, epochs=2,
            batch_size=64, seed=0, default_callbacks=False, verbose=0)
        kernel = result.model.weights[0].value
        out[f"{recipe} {devices}"] = dict(
            loss=result.history["loss"],
            kernel=np.asarray(kernel).tolist(),
            devices=len(kernel.sharding.device_set),
        )
print(json.dumps(out))
"""


@pytest.mark.slow
def test_recipes_over_two_jax_devices_train_as_on_one(jax_runs):
    out = jax_runs["data parallel"]
    for recipe in ("pgd-at", "trades"):
        one, two = out[f"{recipe} 1"], out[f"{recipe} 2"]
        assert (one["devices"], two["devices"]) == (1, 2)
        np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
        np.testing.assert_allclose(
            two["kernel"], one["kernel"], rtol=1e-4, atol=1e-6
        )


def run_here(script, name="script"):
    """Runs `script` in a namespace of its own; its last printed line, read
    as JSON."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(script, name, "exec"), {"__name__": "__main__"})
    return json.loads(printed.getvalue().splitlines()[-1])


# One JAX interpreter runs every script of this file (one start-up, not
# three), each as `run_here` runs it; the data-parallel one last, as it
# leaves a distribution set. Two host devices, for it; the others run on the
# first, as on one.
JAX_RUNNER = (
    BLOCK_TENSORFLOW + "import contextlib, io, json\n"
    + inspect.getsource(run_here) + """
print(json.dumps({name: run_here(code, name) for name, code in SCRIPTS}))
"""
)


@pytest.fixture(scope="module")
def jax_runs(compare_script, run_python):
    """Script name -> what it printed on JAX, as JSON."""
    scripts = [("step", STEP_SCRIPT), ("compare", compare_script),
               ("data parallel", DATA_PARALLEL_SCRIPT)]
    runner = JAX_RUNNER.replace("SCRIPTS", repr(scripts))
    return json.loads(run_python(runner, env={
        **JAX, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }).splitlines()[-1])
