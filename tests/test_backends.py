"""Attacks, evaluation and analysis on every backend: keras_drelu.backends.

The test process runs TensorFlow (the default backend). JAX and PyTorch run
in fresh interpreters on the same weights (saved from here), the same seeds
and the same images; their accuracies are compared with TensorFlow's.
"""

import json
import os

import keras
import numpy as np
import pytest
from backend_cases import accuracies
from backend_cases import analyses
from backend_cases import attack_cases
from conftest import REPO_ROOT

from keras_drelu import DReLU
from keras_drelu import backends
from keras_drelu import calibrate_caps
from keras_drelu.attacks import APGD
from keras_drelu.attacks import FABT
from keras_drelu.attacks import PGD
from keras_drelu.attacks import Square
from keras_drelu.attacks import randomness
from keras_drelu.evaluation import evaluate_robustness

# Accuracies of another backend may differ from TensorFlow's by this much
# (1 point: 2 of the 200 images).
TOLERANCE = 0.01


def lowbias32(h):
    """Wellons' hash in numpy, written apart from `randomness`."""
    h = h.astype("uint32")
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x7FEB352D)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x846CA68B)
    return h ^ (h >> np.uint32(16))


def reference_uniform(keys, size, draw):
    """`randomness.uniform(keys, (size,), draw)` computed in numpy."""
    golden = np.uint32(0x9E3779B9)
    keys = keys.astype("uint32")
    with np.errstate(over="ignore"):
        row = lowbias32(keys[:, 0] ^ lowbias32(np.uint32(draw + 1) * golden))
        for column in (1, 2):
            key = keys[:, column] + np.uint32(0x9E3779B9 * column & 0xFFFFFFFF)
            row = lowbias32(row ^ lowbias32(key))
        entries = lowbias32(np.arange(size, dtype="uint32") + golden)
        bits = lowbias32(row[:, None] ^ entries[None, :])
    return (bits >> np.uint32(8)).astype("float32") * np.float32(2.0**-24)


def test_random_numbers_are_hashes_of_seed_place_stream_and_draw():
    keys = randomness.stream(randomness.keys(7, 5), 3)
    for draw in (0, 4):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(randomness.uniform(keys, (6,), draw)),
            reference_uniform(keys, 6, draw),
        )
    # An input's numbers depend on its key alone, not on its batch (up to
    # the last bit of `log` and `cos`, vectorised by array size).
    every = keras.ops.convert_to_numpy(randomness.normal(keys, (3, 2)))
    some = keras.ops.convert_to_numpy(randomness.normal(keys[[4, 1]], (3, 2)))
    np.testing.assert_allclose(some, every[[4, 1]], rtol=1e-6)


def test_random_numbers_have_the_right_distributions():
    keys = randomness.keys(0, 100)
    u = keras.ops.convert_to_numpy(randomness.uniform(keys, (100,)))
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.002
    z = keras.ops.convert_to_numpy(randomness.normal(keys, (100,), draw=1))
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1.0) < 0.02
    # Draws, streams and seeds give unrelated numbers.
    others = [
        randomness.uniform(keys, (100,), draw=1),
        randomness.uniform(randomness.stream(keys, 1), (100,)),
        randomness.uniform(randomness.keys(1, 100), (100,)),
    ]
    for other in others:
        other = keras.ops.convert_to_numpy(other)
        assert abs(np.corrcoef(u.ravel(), other.ravel())[0, 1]) < 0.02
    shared = keras.ops.convert_to_numpy(randomness.shared_uniform(keys, (4,)))
    np.testing.assert_array_equal(
        shared,
        keras.ops.convert_to_numpy(randomness.shared_uniform(keys[50:], (4,))),
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda m, b: PGD(m, eps=0.1, steps=5, restarts=2, seed=1, batch_size=b),
        lambda m, b: APGD(m, eps=0.1, steps=10, seed=1, batch_size=b),
        lambda m, b: Square(m, eps=0.1, n_queries=40, seed=1, batch_size=b),
        lambda m, b: FABT(
            m, eps=0.1, steps=5, restarts=2, n_target_classes=2, seed=1,
            batch_size=b,
        ),
    ],
)
def test_examples_do_not_depend_on_how_the_inputs_are_batched(
    digits_relu, digits, make
):
    # What makes a batch split over devices give the one-device examples:
    # the same up to the rounding of matrix products of other sizes.
    x, y = digits
    x, y = x[1400:1500], y[1400:1500]
    attack = make(digits_relu, 100)
    whole = attack.generate(x, y)
    split = make(digits_relu, 32).generate(x, y)
    np.testing.assert_allclose(split, whole, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(
        np.argmax(digits_relu.predict(split, verbose=0), axis=1),
        np.argmax(digits_relu.predict(whole, verbose=0), axis=1),
    )
    # A seeded attack gives the same examples on every call.
    np.testing.assert_array_equal(attack.generate(x, y), whole)


def test_compiled_functions_read_the_current_weights():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    predict = backends.compile(lambda x: model(x), backends.variables_of(model))
    x = np.ones((3, 2), "float32")
    for scale in (1.0, 2.0):
        model.set_weights([np.full((2, 1), scale, "float32"), np.zeros(1, "float32")])
        np.testing.assert_array_equal(predict(x), np.full((3, 1), 2 * scale))


def test_gradients_of_unconnected_inputs_are_zero():
    _, aux, grad = backends.value_and_grad(
        lambda x: (keras.ops.sum(keras.ops.stop_gradient(x)), x), np.ones(3)
    )
    assert keras.ops.convert_to_numpy(grad).tolist() == [0.0, 0.0, 0.0]
    assert keras.ops.convert_to_numpy(aux).tolist() == [1.0, 1.0, 1.0]


def test_bad_distribute_values_name_the_backend(digits_relu, digits):
    x, y = digits
    with pytest.raises(ValueError, match="on the TensorFlow backend"):
        evaluate_robustness(digits_relu, x[:4], y[:4], eps=0.1, distribute="gpus")
    # One device: the plain path.
    assert backends.distribution(True) is None


def test_backends_without_gradients_are_named(digits_relu, digits, monkeypatch):
    x, y = digits
    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    with pytest.raises(RuntimeError, match="Received: the 'numpy' backend"):
        PGD(digits_relu, eps=0.1, steps=2).generate(x[:2], y[:2])


@pytest.fixture(scope="module")
def saved_models(digits_relu, digits_srelu, tmp_path_factory):
    folder = tmp_path_factory.mktemp("backends")
    digits_relu.save(folder / "relu.keras")
    digits_srelu.save(folder / "srelu.keras")
    return folder


@pytest.fixture(scope="module")
def tensorflow_accuracies(digits_relu, digits_srelu, digits):
    x, y = digits
    cases = attack_cases(digits_relu, digits_srelu)
    return accuracies(cases, x[1400:1600], y[1400:1600])


def _environment(**extra):
    path = os.pathsep.join(
        [str(REPO_ROOT), str(REPO_ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    )
    return {"PYTHONPATH": path, **extra}


# Run with KERAS_BACKEND=jax, TensorFlow blocked and two host devices.
JAX_SCRIPT = """
import json, sys
sys.modules["tensorflow"] = None
import jax, keras, numpy as np
import keras_drelu, keras_drelu.attacks, keras_drelu.evaluation
import keras_drelu.analysis, keras_drelu.calibration
from sklearn.datasets import load_digits
from backend_cases import accuracies, analyses, attack_cases
from keras_drelu import calibrate_caps, DReLU
from keras_drelu.attacks import APGD, Square, projected_gradient_descent
from keras_drelu.attacks import randomness
from keras_drelu.evaluation import evaluate_robustness

assert keras.backend.backend() == "jax" and len(jax.devices()) == 2
out = {{}}
digits = load_digits()
x = (digits.images / 16.0).astype("float32")[..., None][1400:1600]
y = digits.target[1400:1600]
model = keras.saving.load_model({relu!r})
capped = keras.saving.load_model({srelu!r})
out["accuracies"] = accuracies(attack_cases(model, capped), x, y)
keys = randomness.stream(randomness.keys(7, 5), 3)
out["uniform"] = np.asarray(randomness.uniform(keys, (6,), 4)).tolist()

# The inner attack of a jitted train step: the step's weights and seed
# state come in as arguments, nothing is baked in, nothing retraces.
seed = keras.random.SeedGenerator(0)

@jax.jit
def inner(trainable, non_trainable, seed_state, x, y):
    def loss_fn(x_adv, y):
        logits, _ = model.stateless_call(trainable, non_trainable, x_adv)
        return keras.losses.sparse_categorical_crossentropy(
            y, logits, from_logits=True)
    with keras.StatelessScope([(seed.state, seed_state)]) as scope:
        x_adv = projected_gradient_descent(
            loss_fn, x, y, eps=0.1, step_size=0.025, steps=10, seed=seed)
    return x_adv, scope.get_current_value(seed.state)

trainable = [v.value for v in model.trainable_variables]
x_adv, state = inner(trainable, [], seed.state.value, x[:64], y[:64])
_, state_next = inner(trainable, [], state, x[:64], y[:64])
halved = [w / 2 for w in trainable]
x_halved, _ = inner(halved, [], seed.state.value, x[:64], y[:64])
out["inner"] = dict(
    within=float(np.abs(np.asarray(x_adv) - x[:64]).max()),
    accuracy=float(np.mean(np.argmax(np.asarray(model(x_adv)), 1) == y[:64])),
    new_state=bool(np.any(np.asarray(state) != np.asarray(state_next))),
    weights_read=bool(np.any(np.asarray(x_halved) != np.asarray(x_adv))),
    traces=inner._cache_size(),
)

reports = []
for distribute in (None, True):
    suite = [APGD(capped, eps=0.2, steps=5, seed=0),
             Square(capped, eps=0.2, n_queries=30, seed=0)]
    report = evaluate_robustness(
        capped, x[:60], y[:60], eps=0.2, suite=suite, batch_size=16,
        verbose=False, distribute=distribute)
    summary = report.to_dict()
    summary.pop("timings")
    for row in summary["attacks"]:
        row.pop("seconds")
    reports.append((summary, np.asarray(report.x_adv)))
out["same_report"] = reports[0][0] == reports[1][0]
out["same_examples"] = bool(np.array_equal(reports[0][1], reports[1][1]))
out["report"] = reports[0][0]["accuracy"]
out["zero_gradient_share"] = reports[0][0]["zero_gradient_share"]

out["analysis"] = analyses(model, capped, x[:20], y[:20])
caps = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                         DReLU(name="cap")])
out["caps"] = float(calibrate_caps(caps, x, quantile=0.5)["cap"].mean())
print(json.dumps(out))
"""


@pytest.mark.slow
def test_jax_without_tensorflow_matches_tensorflow(
    saved_models, tensorflow_accuracies, digits, digits_relu, digits_srelu,
    run_python,
):
    script = JAX_SCRIPT.format(
        relu=str(saved_models / "relu.keras"),
        srelu=str(saved_models / "srelu.keras"),
    )
    out = json.loads(
        run_python(
            script,
            env=_environment(
                KERAS_BACKEND="jax",
                XLA_FLAGS="--xla_force_host_platform_device_count=2",
            ),
        ).splitlines()[-1]
    )
    for name, accuracy in tensorflow_accuracies.items():
        assert abs(out["accuracies"][name] - accuracy) <= TOLERANCE, (
            name, out["accuracies"][name], accuracy
        )
    # Every backend draws the same random numbers.
    keys = randomness.stream(randomness.keys(7, 5), 3)
    np.testing.assert_array_equal(out["uniform"], reference_uniform(keys, 6, 4))

    inner = out["inner"]
    assert inner["within"] <= 0.1 + 1e-6 and inner["accuracy"] < 0.7
    assert inner["new_state"] and inner["weights_read"] and inner["traces"] == 1

    # Two devices give the report of one.
    assert out["same_report"] and out["same_examples"]
    x, y = digits
    x, y = x[1400:1460], y[1400:1460]
    here = evaluate_robustness(
        digits_srelu, x, y, eps=0.2, batch_size=16, verbose=False,
        suite=[
            APGD(digits_srelu, eps=0.2, steps=5, seed=0),
            Square(digits_srelu, eps=0.2, n_queries=30, seed=0),
        ],
    )
    # At most one of the 60 images apart.
    for name, accuracy in here.accuracy.items():
        assert abs(out["report"][name] - accuracy) <= 1 / 60, name
    assert out["zero_gradient_share"] == pytest.approx(
        here.zero_gradient_share, abs=1 / 60
    )
    analysis = analyses(digits_relu, digits_srelu, x[:20], y[:20])
    for name, value in analysis.items():
        np.testing.assert_allclose(
            out["analysis"][name], value, rtol=1e-4, atol=1e-6, err_msg=name
        )
    caps = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), DReLU(name="cap")]
    )
    expected = calibrate_caps(caps, digits[0][1400:1600], quantile=0.5)
    assert out["caps"] == pytest.approx(float(expected["cap"].mean()), rel=1e-5)


TORCH_SCRIPT = """
import json, sys
sys.modules["tensorflow"] = None
import keras, numpy as np
import keras_drelu
from sklearn.datasets import load_digits
from backend_cases import accuracies, attack_cases
from keras_drelu.evaluation import evaluate_robustness

assert keras.backend.backend() == "torch"
digits = load_digits()
x = (digits.images / 16.0).astype("float32")[..., None][1400:1600]
y = digits.target[1400:1600]
model = keras.saving.load_model({relu!r})
capped = keras.saving.load_model({srelu!r})
out = {{"accuracies": accuracies(
    attack_cases(model, capped), x, y, names={names!r})}}
try:
    evaluate_robustness(model, x[:4], y[:4], eps=0.1, distribute=True)
except ValueError as error:
    out["distribute"] = str(error)
print(json.dumps(out))
"""

TORCH_ATTACKS = ["FGSM", "PGD", "APGD-CE", "APGD-T", "Square", "BPDA(PGD)"]


@pytest.mark.slow
def test_torch_matches_tensorflow(
    saved_models, tensorflow_accuracies, run_python
):
    script = TORCH_SCRIPT.format(
        relu=str(saved_models / "relu.keras"),
        srelu=str(saved_models / "srelu.keras"),
        names=TORCH_ATTACKS,
    )
    out = json.loads(
        run_python(script, env=_environment(KERAS_BACKEND="torch")).splitlines()[-1]
    )
    assert sorted(out["accuracies"]) == sorted(TORCH_ATTACKS)
    for name, accuracy in out["accuracies"].items():
        assert abs(accuracy - tensorflow_accuracies[name]) <= TOLERANCE, name
    assert "on the PyTorch backend" in out["distribute"]


MIRRORED_SCRIPT = """
import json
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
import keras_drelu
from sklearn.datasets import load_digits
from keras_drelu.attacks import APGD, BPDA, Square
from keras_drelu.evaluation import evaluate_robustness

digits = load_digits()
x = (digits.images / 16.0).astype("float32")[..., None][1400:1460]
y = digits.target[1400:1460]
capped = keras.saving.load_model({srelu!r})
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
reports = []
for distribute in (None, strategy):
    suite = [APGD(capped, eps=0.2, steps=5, seed=0),
             Square(capped, eps=0.2, n_queries=30, seed=0),
             BPDA(APGD(capped, eps=0.2, steps=5, seed=0))]
    report = evaluate_robustness(
        capped, x, y, eps=0.2, suite=suite, batch_size=16, verbose=False,
        distribute=distribute)
    summary = report.to_dict()
    summary.pop("timings")
    for row in summary["attacks"]:
        row.pop("seconds")
    reports.append((summary, report.x_adv))
print(json.dumps(dict(
    replicas=strategy.num_replicas_in_sync,
    same_report=reports[0][0] == reports[1][0],
    same_examples=bool(np.array_equal(reports[0][1], reports[1][1])),
    accuracy=reports[0][0]["accuracy"],
)))
"""


@pytest.mark.slow
def test_mirrored_strategy_gives_the_report_of_one_device(
    saved_models, run_python
):
    script = MIRRORED_SCRIPT.format(srelu=str(saved_models / "srelu.keras"))
    out = json.loads(run_python(script, env=_environment()).splitlines()[-1])
    assert out["replicas"] == 2
    assert out["same_report"] and out["same_examples"]
    # The adaptive attack broke what the plain ones left.
    assert out["accuracy"]["BPDA(APGD-CE)"] < out["accuracy"]["APGD-CE"]
