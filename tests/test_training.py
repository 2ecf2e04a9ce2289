"""Tests of `keras_drelu.training`: recipes, schedule, callbacks, strategies."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_drelu import DReLU
from keras_drelu import straight_through
from keras_drelu import uncapped_twin
from keras_drelu.layers.straight_through import straight_through_active
from keras_drelu.training import MTLAT
from keras_drelu.training import TRADES
from keras_drelu.training import AdversarialTraining
from keras_drelu.training import FastAdversarialTraining
from keras_drelu.training import RobustTraining
from keras_drelu.training import get_strategy
from keras_drelu.training import paper_callbacks
from keras_drelu.training import train
from keras_drelu.training import train_repeated

EPS = 0.1


def build(logits=False, drelu=False):
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8),
            DReLU(initial_max_value=1.0, max_value_regularizer=0.01)
            if drelu
            else keras.layers.ReLU(),
            keras.layers.Dense(3, activation=None if logits else "softmax"),
        ]
    )


def make_data(n=24, seed=0):
    x = np.random.default_rng(seed).uniform(size=(n, 4)).astype("float32")
    return x, (np.arange(n) % 3).astype("int64")


def dataset(batch_size=8, n=24):
    return tf.data.Dataset.from_tensor_slices(make_data(n)).batch(batch_size)


def cross_entropy(probabilities, labels):
    return -np.log(probabilities[np.arange(len(labels)), labels])


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def recording(recipe_class, method):
    """`recipe_class` with `method` recording what it sees or returns."""
    seen = []

    class Recording(recipe_class):
        def compute_loss(self, x=None, y=None, y_pred=None,
                         sample_weight=None, training=True):
            if method == "compute_loss" and training:
                seen.append(keras.ops.convert_to_numpy(x))
            return super().compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                training=training,
            )

        def adversarial_inputs(self, *args):
            x_adv = super().adversarial_inputs(*args)
            if method == "adversarial_inputs":
                seen.append(keras.ops.convert_to_numpy(x_adv))
            return x_adv

    return Recording, seen


# The defining property of each recipe.


@pytest.mark.parametrize(
    "recipe_class, kwargs, norm",
    [
        (AdversarialTraining, {"steps": 3}, "linf"),
        (AdversarialTraining, {"steps": 3}, "l2"),
        (FastAdversarialTraining, {}, "linf"),
    ],
)
def test_adversarial_training_loss_is_on_perturbed_inputs(
    recipe_class, kwargs, norm
):
    # Seeded: an unlucky initialisation can leave an input without any
    # active unit, whose zero gradient moves nothing.
    keras.utils.set_random_seed(0)
    x, y = make_data(8)
    classifier = build()
    initial = classifier.get_weights()
    Recording, seen = recording(recipe_class, "compute_loss")
    trainer = Recording(classifier, eps=EPS, norm=norm, **kwargs)
    trainer.compile(optimizer=keras.optimizers.SGD(0.0), run_eagerly=True)
    history = trainer.fit(x, y, batch_size=8, epochs=1, shuffle=False,
                          verbose=0)
    (x_adv,) = seen
    delta = (x_adv - x).reshape(len(x), -1)
    if norm == "linf":
        size = np.abs(delta).max(axis=1)
    else:
        size = np.linalg.norm(delta, axis=1)
    assert (size <= EPS + 1e-6).all() and (size > EPS / 2).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    # The loss reported is the loss at the adversarial inputs, and higher
    # than the clean loss: the inputs were pushed uphill.
    classifier.set_weights(initial)
    adversarial_loss = cross_entropy(np.asarray(classifier(x_adv)), y).mean()
    clean_loss = cross_entropy(np.asarray(classifier(x)), y).mean()
    np.testing.assert_allclose(history.history["loss"][0], adversarial_loss,
                               rtol=1e-5)
    assert adversarial_loss > clean_loss


def test_trades_loss_is_clean_loss_plus_beta_kl_on_perturbed_inputs():
    x, y = make_data(8)
    classifier = build(logits=True)
    initial = classifier.get_weights()
    Recording, seen = recording(TRADES, "adversarial_inputs")
    trainer = Recording(classifier, beta=6.0, eps=EPS, steps=3,
                        from_logits=True)
    trainer.compile(optimizer=keras.optimizers.SGD(0.0), run_eagerly=True)
    history = trainer.fit(x, y, batch_size=8, epochs=1, shuffle=False,
                          verbose=0)
    (x_adv,) = seen
    assert np.abs(x_adv - x).max() <= EPS + 1e-6
    assert np.abs(x_adv - x).max() > EPS / 2
    classifier.set_weights(initial)
    p_clean = softmax(np.asarray(classifier(x), np.float64))
    p_adv = softmax(np.asarray(classifier(x_adv), np.float64))
    kl = (p_clean * np.log(p_clean / p_adv)).sum(axis=1)
    expected = cross_entropy(p_clean, y).mean() + 6.0 * kl.mean()
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-4)
    assert kl.mean() > 0


def test_trades_with_beta_zero_is_standard_training():
    data = dataset()
    standard = build(drelu=True)
    twin = build(drelu=True)
    twin.set_weights(standard.get_weights())
    standard.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    trades = TRADES(twin, beta=0.0, eps=EPS, steps=2)
    trades.compile(optimizer="adam")
    expected = standard.fit(data, epochs=2, shuffle=False, verbose=0)
    received = trades.fit(data, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(
        received.history["loss"], expected.history["loss"], rtol=1e-5
    )
    for a, b in zip(standard.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_cap_penalty_enters_the_adversarial_loss():
    x, y = make_data(8)
    classifier = build(drelu=True)
    Recording, seen = recording(AdversarialTraining, "compute_loss")
    trainer = Recording(classifier, eps=EPS, steps=2)
    trainer.compile(optimizer=keras.optimizers.SGD(0.0), run_eagerly=True)
    history = trainer.fit(x, y, batch_size=8, epochs=1, shuffle=False,
                          verbose=0)
    caps = np.asarray(classifier.layers[1].max_value)
    penalty = 0.01 * np.sum(caps**2)
    adversarial_loss = cross_entropy(np.asarray(classifier(seen[0])), y).mean()
    np.testing.assert_allclose(
        history.history["loss"][0], adversarial_loss + penalty, rtol=1e-5
    )


def test_classifier_saves_and_loads_without_wrapper(tmp_path):
    result = train(build, dataset(), recipe="pgd-at", epochs=1, eps=EPS,
                   attack_steps=2, seed=0, verbose=0)
    classifier = result.model
    assert type(classifier) is keras.Sequential
    classifier.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    x, _ = make_data(5)
    np.testing.assert_allclose(loaded(x), classifier(x), rtol=1e-6)


def test_recipe_configs_round_trip():
    for recipe in (
        AdversarialTraining(build(), eps=0.2, steps=4, norm="l2"),
        FastAdversarialTraining(build(logits=True), eps=0.2, from_logits=True),
        TRADES(build(), beta=1.0, eps=0.2, step_size=0.05, steps=4),
    ):
        clone = type(recipe).from_config(recipe.get_config())
        for name in ("eps", "step_size", "steps", "norm", "from_logits"):
            assert getattr(clone, name) == getattr(recipe, name), name
        assert clone.classifier is not recipe.classifier
        assert len(clone.classifier.layers) == len(recipe.classifier.layers)
    assert clone.beta == 1.0


def test_drelu_recipe_lowers_the_caps():
    result = train(lambda: build(drelu=True), dataset(), recipe="drelu",
                   epochs=2, seed=0, verbose=0)
    caps = np.asarray(result.model.layers[1].max_value)
    assert (caps < 1.0).all()
    with pytest.raises(ValueError, match="at least one DReLU"):
        train(build, dataset(), recipe="drelu", epochs=1, verbose=0)


@pytest.mark.parametrize("logits", [False, True])
def test_from_logits_is_read_from_the_last_layer(logits):
    x, y = make_data()
    classifier = build(logits=logits)
    outputs = np.asarray(classifier(x), np.float64)
    expected = cross_entropy(softmax(outputs) if logits else outputs, y).mean()
    result = train(classifier, dataset(batch_size=24), recipe="standard",
                   epochs=1, optimizer=keras.optimizers.SGD(0.0), verbose=0)
    np.testing.assert_allclose(result.history["loss"][0], expected, rtol=1e-5)


# Schedule, callbacks, resuming, seeds.


class Kill(keras.callbacks.Callback):
    """Raises at the end of epoch `at` of an adversarial phase."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at and isinstance(self.model, RobustTraining):
            raise RuntimeError("killed")


class Journal(keras.callbacks.Callback):
    """Records which model trains which epochs, from which optimizer step."""

    def __init__(self, log):
        super().__init__()
        self.log = log

    def on_train_begin(self, logs=None):
        self.log.append(
            ("begin", type(self.model).__name__,
             int(self.model.optimizer.iterations))
        )

    def on_epoch_begin(self, epoch, logs=None):
        self.log.append(("epoch", epoch))


def test_killed_run_resumes_without_repeating_epochs(tmp_path):
    backup = tmp_path / "backup"
    log = []
    arguments = dict(recipe="pgd-at", epochs=4, eps=EPS, attack_steps=2,
                     backup_dir=str(backup), verbose=0)
    with pytest.raises(RuntimeError, match="killed"):
        train(build, dataset(), seed=0, callbacks=[Kill(1), Journal(log)],
              **arguments)
    assert backup.is_dir()
    # A new process would build a new model: so does this restart.
    result = train(build, dataset(), seed=1, callbacks=[Journal(log)],
                   **arguments)
    epochs = [entry[1] for entry in log if entry[0] == "epoch"]
    assert epochs == [0, 1, 2, 3]
    assert result.epochs == [2, 3]
    restarts = [entry for entry in log if entry[0] == "begin"]
    assert restarts[1] == ("begin", "AdversarialTraining", 2 * 3)
    assert not backup.exists()  # deleted once training finished


def test_natural_then_adversarial_schedule_resumes_in_its_phase(tmp_path):
    backup = tmp_path / "backup"
    log = []
    arguments = dict(recipe="trades", natural_epochs=2, epochs=2, eps=EPS,
                     attack_steps=2, beta=1.0, backup_dir=str(backup),
                     verbose=0)
    with pytest.raises(RuntimeError, match="killed"):
        train(build, dataset(), dataset(), seed=0,
              callbacks=[Kill(0), Journal(log)], **arguments)
    result = train(build, dataset(), dataset(), seed=0,
                   callbacks=[Journal(log)], **arguments)
    begins = [entry[1] for entry in log if entry[0] == "begin"]
    # Natural phase, killed adversarial phase, then only the adversarial
    # phase again, resumed at its second epoch.
    assert begins == ["Sequential", "TRADES", "TRADES"]
    assert result.epochs == [1]
    assert sorted(result.history) == [
        "accuracy", "learning_rate", "loss", "task_loss", "val_accuracy",
        "val_loss", "val_task_loss",
    ]
    assert not backup.exists() or not any(backup.rglob("*.h5"))

    full = train(build, dataset(), dataset(), seed=0, **{
        **arguments, "backup_dir": None})
    assert full.epochs == [0, 1, 2, 3]
    assert len(full.history["loss"]) == 4


def test_paper_callbacks_settings():
    backup, plateau, stopping, nan = paper_callbacks("/tmp/x", "loss")
    assert isinstance(backup, keras.callbacks.BackupAndRestore)
    assert (plateau.factor, plateau.patience, plateau.monitor) == (
        0.5, 5, "loss"
    )
    assert (stopping.patience, stopping.restore_best_weights) == (10, True)
    assert stopping.monitor == "loss"
    assert isinstance(nan, keras.callbacks.TerminateOnNaN)
    assert len(paper_callbacks()) == 3


def test_train_defaults_to_adam_and_watches_loss_without_validation(recwarn):
    result = train(build, dataset(), epochs=1, seed=0, verbose=0)
    optimizer = result.model.optimizer
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)
    assert not [w for w in recwarn if "not available" in str(w.message)]


def test_seeds_repeat_and_differ():
    results = train_repeated(build, dataset(), seeds=(0, 1), epochs=1,
                             verbose=0)
    again = train(build, dataset(), epochs=1, seed=0, verbose=0)
    first, second = (r.model.get_weights()[0] for r in results)
    np.testing.assert_array_equal(first, again.model.get_weights()[0])
    assert not np.allclose(first, second)


def test_mixed_precision_training():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        for recipe in ("pgd-at", "trades"):
            result = train(
                build, dataset(), recipe=recipe, epochs=1, eps=EPS,
                attack_steps=2, seed=0, verbose=0,
            )
            assert np.isfinite(result.history["loss"]).all()
            assert result.model.layers[0].compute_dtype == "float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


# Distribution.


TWO_REPLICAS = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras
    from keras_drelu import DReLU
    from keras_drelu.training import train

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    x = np.random.default_rng(0).uniform(size=(16, 4)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.arange(16) % 3)).batch(8)
    def layers():
        # A D-ReLU with its cap penalty: the layer's cap variable and its
        # loss are mirrored and scaled too.
        return [keras.Input((4,)), keras.layers.Dense(8),
                DReLU(initial_max_value=3.0, max_value_regularizer=0.01),
                keras.layers.Dense(3, activation="softmax")]

    keras.utils.set_random_seed(0)
    weights = keras.Sequential(layers()).get_weights()

    def build():
        model = keras.Sequential(layers())
        model.set_weights(weights)
        return model

    result = {"replicas": strategy.num_replicas_in_sync}
    for recipe, beta in (("pgd-at", None), ("trades", 0.0), ("trades", 6.0)):
        runs = []
        for which in (strategy, None):
            trained = train(build, data, recipe=recipe, epochs=1, eps=0.1,
                            attack_steps=2, beta=beta, strategy=which,
                            default_callbacks=False, verbose=0)
            runs.append(trained.history["loss"][0])
            if which is strategy:
                kernel = trained.model.layers[0].kernel.value
                result["mirrored_variable"] = type(kernel).__name__
                cap = trained.model.layers[1]
                result["mirrored_cap"] = type(cap.max_value_variable.value).__name__
                result["largest_cap"] = float(tf.reduce_max(cap.max_value))
        result[f"{recipe}-{beta}"] = runs
    json.dump(result, open("result.json", "w"))
    """
)


@pytest.mark.slow
def test_mirrored_strategy_over_two_cpu_replicas(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run(
        [sys.executable, "-c", TWO_REPLICAS], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["replicas"] == 2
    assert result["mirrored_variable"] == "MirroredVariable"
    assert result["mirrored_cap"] == "MirroredVariable"
    assert result["largest_cap"] < 3.0  # the penalty moved the caps
    # TRADES without its random attack term reports the same loss on two
    # replicas as on one: the per-replica scaling is undone correctly.
    two, one = result["trades-0.0"]
    assert two == pytest.approx(one, rel=1e-5)
    for recipe in ("pgd-at-None", "trades-6.0"):
        two, one = result[recipe]
        assert np.isfinite(two) and two == pytest.approx(one, rel=0.2)


def test_model_built_outside_the_strategy_scope_is_refused():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with pytest.raises(ValueError, match="outside the strategy's scope"):
        train(build(), dataset(), epochs=1, strategy=strategy, verbose=0)
    result = train(build, dataset(), epochs=1, strategy=strategy, verbose=0)
    assert np.isfinite(result.history["loss"]).all()


def test_get_strategy_names(monkeypatch):
    default = tf.distribute.get_strategy()
    assert get_strategy("none") is default
    assert get_strategy("auto") is default  # no GPUs here
    mirrored = get_strategy("mirrored")
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert get_strategy(mirrored) is mirrored
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        get_strategy("multi_worker")
    with pytest.raises(ValueError, match="strategy='gpus'"):
        get_strategy("gpus")


# Argument validation.


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"recipe": "madry"}, "recipe='madry'"),
        ({"recipe": "pgd-at"}, "needs the argument `eps` \\(radius"),
        ({"eps": 0.1}, "`eps` does not apply to recipe='standard'"),
        ({"recipe": "drelu", "natural_epochs": 3},
         "`natural_epochs` applies to adversarial recipes"),
        ({"recipe": "standard", "gamma": 2.0},
         "`gamma` does not apply to recipe='standard', which takes no"),
        ({"recipe": "fgsm-at", "eps": 0.1, "beta": 1.0},
         r"takes \('eps', 'step_size', 'norm', 'inner_gradient', 'eps_ramp_steps'\)"),
        ({"recipe": "fgsm-at", "eps": 0.1, "attack_steps": 3},
         "`attack_steps` does not apply"),
        ({"recipe": "pgd-at", "eps": 0.1, "beta": 1.0},
         "`beta` does not apply"),
        ({"recipe": "pgd-at", "eps": 0.1, "natural_epochs": -1},
         "natural_epochs=-1"),
        # Refused before the natural phase would train.
        ({"recipe": "pgd-at", "eps": -0.1, "natural_epochs": 3}, "eps=-0.1"),
        ({"recipe": "pgd-at", "eps": 0.1, "attack_steps": 0}, "steps=0"),
        ({"recipe": "pgd-at", "eps": 0.1, "norm": "l1"}, "norm='l1'"),
        ({"recipe": "trades", "eps": 0.1, "beta": -1.0}, "beta=-1.0"),
        ({"strategy": "gpus"}, "strategy='gpus'"),
        ({"epochs": 0}, "epochs=0"),
        ({"seed": 1.5}, "seed=1.5"),
        ({"from_logits": "yes"}, "from_logits='yes'"),
    ],
)
def test_train_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train(build, dataset(), **{"epochs": 1, "verbose": 0, **kwargs})


def test_recipe_and_repeat_argument_errors():
    with pytest.raises(ValueError, match="should be a `keras.Model`"):
        AdversarialTraining(lambda x: x, eps=0.1)
    with pytest.raises(ValueError, match="from_logits='yes'"):
        TRADES(build(), eps=0.1, from_logits="yes")
    with pytest.raises(ValueError, match="step_size=0"):
        FastAdversarialTraining(build(), eps=0.1, step_size=0)
    with pytest.raises(ValueError, match="should return a `keras.Model`"):
        train(lambda: "model", dataset(), epochs=1)
    with pytest.raises(ValueError, match="seeds=\\[1, 1\\]"):
        train_repeated(build, dataset(), seeds=[1, 1], epochs=1)
    with pytest.raises(ValueError, match="function building a fresh"):
        train_repeated(build(), dataset(), epochs=1)
    with pytest.raises(ValueError, match="not `seed`"):
        train_repeated(build, dataset(), seed=3, epochs=1)


# Straight-through inner attacks: one model, two gradient views per step.


def clipping_classifier(parameterization="log"):
    """Dense -> DReLU -> 2 logits, every unit clipped on inputs in [0, 1]:
    the bias of 2 lifts each pre-activation far above its cap of 0.5, so
    the exact input gradient is zero everywhere."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(5, bias_initializer=keras.initializers.Constant(2.0)),
        DReLU(initial_max_value=0.5, max_value_regularizer=0.01,
              max_value_parameterization=parameterization),
        keras.layers.Dense(2),
    ])
    model.layers[0].kernel.assign(
        np.random.default_rng(1).uniform(-0.2, 0.2, (6, 5)).astype("float32")
    )
    return model


def input_gradient(model, x, y, scope=False):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        with straight_through(scope):
            loss = keras.losses.sparse_categorical_crossentropy(
                y, model(x), from_logits=True
            )
    return tape.gradient(loss, x).numpy()


def weight_gradients(model, x, y, scope=False):
    """The gradient of the compiled loss (mean CE plus the cap penalty)."""
    with tf.GradientTape() as tape:
        with straight_through(scope):
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                y, model(x), from_logits=True
            )) + tf.add_n(model.losses)
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


@pytest.mark.parametrize("parameterization", ["log", "linear"])
def test_one_step_attacks_through_the_caps_and_updates_with_the_exact_gradient(
    parameterization
):
    x = np.random.default_rng(2).uniform(0.2, 0.8, (8, 6)).astype("float32")
    y = np.arange(8) % 2
    classifier = clipping_classifier(parameterization)
    twin = uncapped_twin(classifier)
    # The setting makes the views differ: the exact input gradient vanishes
    # (every unit clips); the plain ReLU twin's does not.
    assert not input_gradient(classifier, x, y).any()
    twin_gradient = input_gradient(twin, x, y)
    assert (twin_gradient != 0).all()
    np.testing.assert_array_equal(
        np.sign(input_gradient(classifier, x, y, scope=True)),
        np.sign(twin_gradient),
    )
    initial = [v.numpy() for v in classifier.trainable_variables]

    seen = tf.Variable(tf.zeros_like(x))

    class Recorded(AdversarialTraining):
        def adversarial_inputs(self, x, y):
            x_adv = super().adversarial_inputs(x, y)
            seen.assign(x_adv)
            return x_adv

    # One PGD step of 2.5 eps from a random start in the eps-ball ends on
    # the ball's corner `x + eps * sign(gradient)`, whatever the start.
    trainer = Recorded(classifier, eps=EPS, steps=1, from_logits=True)
    assert trainer.inner_gradient == "bpda"  # the default for caps
    trainer.compile(optimizer=keras.optimizers.SGD(0.5))  # compiled step
    trainer.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    x_adv = seen.numpy()
    # The attack followed the plain-ReLU gradient...
    np.testing.assert_allclose(x_adv, x + EPS * np.sign(twin_gradient),
                               atol=1e-6)
    # ...and the update the exact one, at those inputs, on the same weights.
    probe = clipping_classifier(parameterization)
    for variable, value in zip(probe.trainable_variables, initial):
        variable.assign(value)
    exact = weight_gradients(probe, x_adv, y)
    through = weight_gradients(probe, x_adv, y, scope=True)
    assert not exact[0].any() and through[0].any()  # clipped: no kernel grad
    for variable, value, gradient in zip(
        classifier.trainable_variables, initial, exact
    ):
        np.testing.assert_allclose(variable.numpy(), value - 0.5 * gradient,
                                   rtol=1e-5, atol=1e-6)


def test_exact_inner_gradient_stalls_on_clipped_units():
    x = np.random.default_rng(2).uniform(0.2, 0.8, (8, 6)).astype("float32")
    Recording, seen = recording(AdversarialTraining, "adversarial_inputs")
    trainer = Recording(clipping_classifier(), eps=EPS, steps=1,
                        from_logits=True, inner_gradient="exact")
    trainer.compile(optimizer=keras.optimizers.SGD(0.0), run_eagerly=True)
    trainer.fit(x, np.arange(8) % 2, batch_size=8, epochs=1, shuffle=False,
                verbose=0)
    # A zero gradient moves nothing: the random start stays inside the
    # ball, where the straight-through step reaches its corners.
    assert (np.abs(seen[0] - x) < EPS - 1e-3).mean() > 0.9


class ScopeProbe(keras.layers.Layer):
    """Passes its input on, logging whether straight-through is active
    each time it is called (when traced, inside a compiled step)."""

    def __init__(self, log, **kwargs):
        super().__init__(**kwargs)
        # A bound method: Keras would wrap a list attribute in a copy.
        self.record = log.append

    def call(self, inputs):
        self.record(straight_through_active())
        return inputs


def probed_classifier(log):
    return keras.Sequential([
        keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(8),
        DReLU(initial_max_value=1.0, max_value_regularizer=0.01),
        ScopeProbe(log), keras.layers.Dense(3),
    ])


def marking(trainer_class, attack, log):
    """`trainer_class` whose attack method `attack` marks its start and end
    in `log`."""

    def marked(self, *args):
        log.append("attack")
        result = getattr(trainer_class, attack)(self, *args)
        log.append("end")
        return result

    return type(trainer_class.__name__, (trainer_class,), {attack: marked})


@pytest.mark.parametrize("inner_gradient", ["bpda", "exact"])
@pytest.mark.parametrize("trainer_class, attack, kwargs", [
    (AdversarialTraining, "adversarial_inputs", {"steps": 2}),
    (FastAdversarialTraining, "adversarial_inputs", {}),
    (TRADES, "adversarial_inputs", {"steps": 2}),
    (MTLAT, "targeted_inputs", {"seed": 0}),
])
def test_every_trainer_attacks_in_the_scope_and_updates_outside_it(
    trainer_class, attack, kwargs, inner_gradient
):
    log = []
    trainer = marking(trainer_class, attack, log)(
        probed_classifier(log), eps=EPS, from_logits=True,
        inner_gradient=inner_gradient, **kwargs,
    )
    trainer.compile(optimizer="adam")
    x = np.random.default_rng(0).uniform(size=(8, 4, 4, 1)).astype("float32")
    del log[:]  # the calls that built the model
    trainer.fit(x, np.arange(8) % 3, batch_size=8, epochs=1, verbose=0)
    # Each trace of the step (Keras may trace it more than once): the
    # attack's calls, then the update's.
    traces = "|".join(map(str, log)).split("attack|")[1:]
    assert traces
    for trace in traces:
        inside, after = (part.strip("|").split("|")
                         for part in trace.split("end"))
        assert set(inside) == {str(inner_gradient == "bpda")}
        assert set(after) == {"False"}


def test_inner_gradient_defaults_per_model_and_reaches_the_settings():
    capped = train(lambda: build(drelu=True), dataset(), recipe="pgd-at",
                   epochs=1, eps=EPS, attack_steps=1, seed=0, verbose=0)
    plain = train(build, dataset(), recipe="trades", epochs=1, eps=EPS,
                  attack_steps=1, seed=0, verbose=0)
    chosen = train(lambda: build(drelu=True), dataset(), recipe="fgsm-at",
                   epochs=1, eps=EPS, inner_gradient="exact", seed=0,
                   verbose=0)
    assert capped.settings["inner_gradient"] == "bpda"
    assert plain.settings["inner_gradient"] == "exact"
    assert chosen.settings["inner_gradient"] == "exact"
    with pytest.raises(ValueError, match="inner_gradient='straight'"):
        train(build, dataset(), recipe="pgd-at", epochs=1, eps=EPS,
              inner_gradient="straight", verbose=0)
    with pytest.raises(ValueError, match="`inner_gradient` does not apply"):
        train(build, dataset(), recipe="standard", epochs=1,
              inner_gradient="bpda", verbose=0)
    trainer = AdversarialTraining(build(drelu=True), eps=EPS,
                                  inner_gradient="exact")
    clone = AdversarialTraining.from_config(trainer.get_config())
    assert clone.inner_gradient == "exact"


# The logs and callbacks watch the task, not the cap penalty.


def penalised_classifier():
    """The quick start's proportions: 256 caps at 100 under lam 1e-3, a
    penalty of 2560 against a cross-entropy of about 2."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((16,)), keras.layers.Dense(256),
        DReLU(initial_max_value=100.0, max_value_regularizer=1e-3),
        keras.layers.Dense(10),
    ])


def test_task_loss_and_cap_penalty_are_logged_apart(monkeypatch):
    from keras_drelu.training import experiment

    made = []

    def recorded(*args, **kwargs):
        callbacks = paper_callbacks(*args, **kwargs)
        made.extend(callbacks)
        return callbacks

    monkeypatch.setattr(experiment, "paper_callbacks", recorded)
    x = np.random.default_rng(0).uniform(size=(32, 16)).astype("float32")
    y = np.arange(32) % 10
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    model = penalised_classifier()
    outputs = np.asarray(model(x), np.float64)
    expected_task = cross_entropy(softmax(outputs), y).mean()
    # A learning rate of 0 keeps every number at its initial value.
    result = train(model, data, data, recipe="drelu", epochs=1,
                   optimizer=keras.optimizers.SGD(0.0), verbose=0)
    history = {key: values[0] for key, values in result.history.items()}
    assert history["task_loss"] == pytest.approx(expected_task, rel=1e-5)
    assert history["val_task_loss"] == pytest.approx(expected_task, rel=1e-5)
    assert 1.0 < history["task_loss"] < 5.0
    assert history["cap_penalty"] == pytest.approx(1e-3 * 256 * 100**2,
                                                   rel=1e-5)
    assert history["loss"] == pytest.approx(
        history["task_loss"] + history["cap_penalty"], rel=1e-5
    )
    assert history["val_loss"] == pytest.approx(history["loss"], rel=1e-5)
    watching = {type(c).__name__: c.monitor for c in made
                if hasattr(c, "monitor")}
    assert watching == {"ReduceLROnPlateau": "val_task_loss",
                        "EarlyStopping": "val_task_loss"}

    del made[:]
    unvalidated = train(penalised_classifier, data, recipe="pgd-at",
                        epochs=1, eps=EPS, attack_steps=1, verbose=0)
    assert {c.monitor for c in made if hasattr(c, "monitor")} == {"task_loss"}
    assert unvalidated.history["cap_penalty"][0] > 1000
    # A model without penalised caps logs no penalty.
    assert "cap_penalty" not in train(build, dataset(), epochs=1,
                                      verbose=0).history


def test_mtlat_task_loss_is_on_its_soft_labels():
    x = np.random.default_rng(0).uniform(size=(16, 4, 4, 1)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.arange(16) % 3)).batch(8)
    result = train(lambda: probed_classifier([]), data, data, recipe="mtlat",
                   epochs=1, eps=EPS, optimizer=keras.optimizers.SGD(0.0),
                   seed=0, verbose=0)
    history = {key: values[0] for key, values in result.history.items()}
    # Validation labels are one-hot: the penalty is the only difference.
    assert history["val_loss"] == pytest.approx(
        history["val_task_loss"] + history["cap_penalty"], rel=1e-5
    )


def test_early_stopping_restores_the_best_task_loss_not_the_best_loss():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    stopping = next(c for c in paper_callbacks()
                    if isinstance(c, keras.callbacks.EarlyStopping))
    stopping.set_model(model)
    stopping.on_train_begin()
    # The penalty falls every epoch, so `val_loss` does too; the task is
    # best at epoch 1.
    task = [0.9, 0.5, 0.7, 0.8]
    penalty = [100.0, 90.0, 80.0, 70.0]
    for epoch, (t, p) in enumerate(zip(task, penalty)):
        model.set_weights([np.full((2, 1), epoch, "float32"),
                           np.zeros(1, "float32")])
        stopping.on_epoch_end(epoch, {"val_task_loss": t, "val_loss": t + p})
    stopping.on_train_end()
    assert model.get_weights()[0][0, 0] == 1.0


def test_eps_ramp_grows_the_radius_over_its_steps():
    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    trainer = AdversarialTraining(
        classifier, eps=0.4, steps=3, eps_ramp_steps=4, from_logits=True
    )
    trainer.compile(keras.optimizers.SGD(0.0))
    x = np.random.default_rng(0).uniform(0.3, 0.7, (8, 4)).astype("float32")
    radii = []
    for step in range(6):
        eps, step_size = trainer.radius()
        radii.append((float(eps), float(step_size)))
        trainer.train_on_batch(x, np.arange(8) % 3)
    shares = [min(1.0, (t + 1) / 4) for t in range(6)]
    np.testing.assert_allclose([r[0] for r in radii], [0.4 * s for s in shares],
                               rtol=1e-6)
    np.testing.assert_allclose([r[1] for r in radii],
                               [2.5 * 0.4 / 3 * s for s in shares], rtol=1e-6)
    assert AdversarialTraining(classifier, eps=0.4).radius() == (
        0.4, 2.5 * 0.4 / 10
    )


def test_train_counts_the_ramp_in_epochs_of_the_data():
    x = np.random.default_rng(0).uniform(size=(32, 4)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, np.arange(32) % 3)).batch(8)

    def build():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])

    result = train(build, data, recipe="pgd-at", epochs=1, eps=0.1,
                   attack_steps=1, eps_ramp=1.5, verbose=0, seed=0)
    assert result.settings["eps_ramp_steps"] == 6  # 1.5 epochs of 4 batches
    with pytest.raises(ValueError, match="whose length is unknown"):
        train(build, data.repeat(), recipe="pgd-at", epochs=1, eps=0.1,
              eps_ramp=1.0, verbose=0)
    with pytest.raises(ValueError, match="eps_ramp_steps.*does not apply"):
        train(build, data, recipe="standard", epochs=1, eps_ramp=1.0)


@pytest.mark.parametrize("as_dataset", [False, True], ids=["arrays", "dataset"])
@pytest.mark.parametrize("recipe", ["standard", "pgd-at", "trades", "mtlat"])
def test_each_phase_traces_its_training_step_once(recipe, as_dataset,
                                                  monkeypatch):
    # Keras makes the optimizer's slots and the "accuracy" metric inside the
    # first trace, and `tf.function` then traces again; `train` makes both
    # beforehand, and the history is the one Keras' own way gives (M-TLAT
    # scores soft labels, the others class ids).
    from keras_drelu.training import experiment

    traces = []
    original = keras.Model.train_step

    def counted(self, data):
        traces.append(type(self).__name__)
        return original(self, data)

    monkeypatch.setattr(keras.Model, "train_step", counted)
    x = np.random.default_rng(0).uniform(size=(64, 4, 4, 1)).astype("float32")
    y = np.arange(64) % 3
    data = (x, y)
    if as_dataset:
        data = tf.data.Dataset.from_tensor_slices(data).batch(32)
    # Adversarial recipes after a natural epoch: two phases.
    settings = {} if recipe == "standard" else {"eps": 0.1, "natural_epochs": 1}
    phases = 1 if recipe == "standard" else 2

    def history():
        traces.clear()
        return train(
            lambda: keras.Sequential([
                keras.Input((4, 4, 1)), keras.layers.Flatten(),
                keras.layers.Dense(3),
            ]),
            data, recipe=recipe, epochs=2, batch_size=None if as_dataset
            else 32, seed=0, default_callbacks=False, verbose=0, **settings,
        ).history

    ours = history()
    assert len(traces) == phases, traces
    monkeypatch.setattr(experiment, "_build_before_tracing", lambda *a: None)
    keras_way = history()
    assert len(traces) == 2 * phases, traces
    assert ours.keys() == keras_way.keys()
    for key in ours:
        np.testing.assert_allclose(ours[key], keras_way[key], rtol=1e-6,
                                   err_msg=key)
    assert all(0 < a <= 1 for a in ours["accuracy"])


@pytest.mark.parametrize("as_dataset", [False, True], ids=["arrays", "dataset"])
def test_build_metrics_lets_evaluate_trace_its_step_once(as_dataset,
                                                         monkeypatch):
    from keras_drelu.training import build_metrics

    traces = []
    original = keras.Model.test_step

    def counted(self, data):
        traces.append(1)
        return original(self, data)

    monkeypatch.setattr(keras.Model, "test_step", counted)
    x = np.random.default_rng(0).uniform(size=(40, 5)).astype("float32")
    y = np.arange(40) % 3
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(40)
    keras.utils.set_random_seed(0)
    weights = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    results = []
    for build in (True, False):
        model = keras.models.clone_model(weights)
        model.set_weights(weights.get_weights())
        model.compile(loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        traces.clear()
        if build:
            assert build_metrics(model, data if as_dataset else (x, y))
        results.append(model.evaluate(data, verbose=0))
        assert len(traces) == (1 if build else 2), (build, traces)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)
    accuracy = np.mean(np.argmax(weights.predict(x, verbose=0), 1) == y)
    assert results[0][1] == pytest.approx(accuracy)


def test_build_metrics_leaves_data_of_unknown_shape_to_keras():
    from keras_drelu.training import build_metrics

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    unknown = tf.data.Dataset.from_generator(
        lambda: iter([]), output_signature=(
            tf.TensorSpec((None, None), tf.float32),
            tf.TensorSpec((None,), tf.int64)))
    assert build_metrics(model, unknown) is False
    # Inputs that are not one array, and labels given as a list.
    x = np.zeros((4, 5), "float32")
    assert build_metrics(model, ({"features": x}, np.zeros(4))) is False
    assert build_metrics(model, (x, [0, 1, 2, 0])) is False
    # Tensors, as well as numpy arrays.
    assert build_metrics(model, (tf.constant(x), tf.zeros(4, tf.int32)))
