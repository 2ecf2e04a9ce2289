"""Attacks, evaluation and analysis on every backend: keras_drelu.backends.

The test process runs TensorFlow (the default backend). JAX and PyTorch run
in fresh interpreters on the same weights (saved from here), the same seeds
and the same images (tests/backend_cases.py); their accuracies, evaluation
reports and analyses are compared with TensorFlow's.
"""

import json
import os

import keras
import numpy as np
import pytest
from backend_cases import backend_numbers
from conftest import REPO_ROOT
from conftest import Counting

from keras_drelu import backends
from keras_drelu import DReLU
from keras_drelu.attacks import APGD
from keras_drelu.attacks import BPDA
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


def test_fused_functions_give_what_they_fuse_inside_compiled_ones():
    def step(x, scale):
        return {"x": keras.ops.clip(x * scale, 0.0, 1.0), "sum": keras.ops.sum(x)}

    fused = backends.fuse(step)
    run = backends.compile(
        lambda x: keras.ops.fori_loop(
            0, 3, lambda i, x: fused(x, 1.5)["x"] + 0.01, x
        )
    )
    x = np.linspace(0.0, 0.5, 8, dtype="float32")[:, None]
    expected = x
    for _ in range(3):
        expected = np.clip(expected * 1.5, 0.0, 1.0) + 0.01
    np.testing.assert_allclose(run(x), expected, rtol=1e-6)


def _scaled(x, *, scale):
    return keras.ops.clip(x * scale, 0.0, 1.0)


def test_fused_functions_are_shared_by_callers_with_the_same_settings():
    scaled = Counting(_scaled)
    x = np.linspace(0.0, 0.5, 8, dtype="float32")[:, None]

    def run(**settings):
        # A new compiled function each time, as a new attack makes.
        fused = backends.fuse(scaled, **settings)
        return backends.compile(lambda x: fused(x) + 0.0)(x)

    np.testing.assert_array_equal(run(scale=1.5), np.clip(x * 1.5, 0.0, 1.0))
    np.testing.assert_array_equal(run(scale=1.5), np.clip(x * 1.5, 0.0, 1.0))
    assert scaled.calls == 1
    assert backends.fuse(scaled, scale=1.5) is backends.fuse(scaled, scale=1.5)
    # Other settings, even equal in Python (`2 == 2.0`), compile apart.
    np.testing.assert_array_equal(run(scale=2.0), np.clip(x * 2.0, 0.0, 1.0))
    np.testing.assert_array_equal(run(scale=2), np.clip(x * 2.0, 0.0, 1.0))
    assert scaled.calls == 3
    # A new shape of the tensors: a new trace of the same function.
    backends.compile(lambda x: backends.fuse(scaled, scale=1.5)(x))(x[:, 0])
    assert scaled.calls == 4


class _TracedCalls(keras.layers.Layer):
    """The identity, counting the calls that build a graph (traces)."""

    traces = 0

    def call(self, x):
        import tensorflow as tf

        if not tf.executing_eagerly():
            type(self).traces += 1
        return x


def _small_capped_model():
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((6,)), _TracedCalls(), keras.layers.Dense(8),
        DReLU(initial_max_value=0.05), keras.layers.Dense(3),
    ])


def test_attacks_on_one_model_share_the_traces_of_its_pass():
    # An evaluation compiles a dozen functions around one model; each traced
    # the model's layers (a second for MobileNetV2) until they shared them.
    model = _small_capped_model()
    x = np.random.default_rng(0).random((5, 6)).astype("float32")
    y = np.array([0, 1, 2, 0, 1])

    def attacks():
        return (APGD(model, eps=0.1, steps=3, seed=0),
                APGD(model, eps=0.2, steps=3, seed=1),
                PGD(model, eps=0.1, steps=3, seed=0),
                FABT(model, eps=0.1, steps=3, n_target_classes=2, seed=0),
                Square(model, eps=0.1, n_queries=5, seed=0))

    _TracedCalls.traces = 0
    for attack in attacks():
        attack.generate(x, y)
    first = _TracedCalls.traces
    # Five attacks, each tracing the model more than once on its own; shared:
    # one trace for the batch's shape, and one for any shape.
    assert 1 <= first <= 2
    for attack in attacks():
        attack.generate(x, y)
    assert _TracedCalls.traces == first
    # Straight through the caps, the model traces into another graph.
    BPDA(APGD(model, eps=0.1, steps=3, seed=0)).generate(x, y)
    assert first < _TracedCalls.traces <= 2 * first


def _with_fresh_copy():
    """A small capped model and a copy of it that no attack has traced."""
    model = _small_capped_model()
    fresh = keras.models.clone_model(model)
    fresh.set_weights(model.get_weights())
    return model, fresh


def test_straight_through_and_exact_passes_do_not_mix():
    # BPDA's pass (plain-ReLU input gradients) and the exact one are traced
    # apart: each gives, after the other ran, what it gives on a fresh copy.
    model, fresh = _with_fresh_copy()
    x = np.random.default_rng(1).random((8, 6)).astype("float32")
    y = np.arange(8) % 3

    def both(m):
        exact = PGD(m, eps=0.3, steps=5, seed=0)
        through = BPDA(PGD(m, eps=0.3, steps=5, seed=0))
        return exact, through

    exact, through = both(model)
    exact_after = exact.generate(x, y)
    through_after = through.generate(x, y)
    exact_again = both(model)[0].generate(x, y)
    np.testing.assert_array_equal(both(fresh)[1].generate(x, y), through_after)
    np.testing.assert_array_equal(exact_again, exact_after)
    # The two views differ on this model (caps at 0.05 mask the gradient).
    assert not np.array_equal(exact_after, through_after)


def test_a_pass_traced_for_any_batch_keeps_each_callers_batch_size():
    # After two batch sizes the pass is traced for any; APGD's loop needs
    # its logits to keep the static batch size of its own inputs.
    model, fresh = _with_fresh_copy()
    x = np.random.default_rng(2).random((7, 6)).astype("float32")
    y = np.arange(7) % 3
    for rows in (7, 4, 1):
        np.testing.assert_array_equal(
            APGD(model, eps=0.2, steps=3, seed=0).generate(x[:rows], y[:rows]),
            APGD(fresh, eps=0.2, steps=3, seed=0, batch_size=rows).generate(
                x[:rows], y[:rows]),
        )


def test_a_shared_pass_does_not_keep_its_model_alive():
    import gc
    import weakref

    model = _small_capped_model()
    x = np.zeros((2, 6), "float32")
    PGD(model, eps=0.1, steps=2, seed=0).generate(x, np.array([0, 1]))
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None


def test_fuse_refuses_what_it_cannot_share():
    scale = 1.5
    with pytest.raises(ValueError, match="reading scale of its enclosing"):
        backends.fuse(lambda x: x * scale)
    with pytest.raises(TypeError, match="pass a tensor as an argument"):
        backends.fuse(_scaled, scale=keras.ops.ones(()))


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
def tensorflow_numbers(digits_relu, digits_srelu):
    return backend_numbers(digits_relu, digits_srelu)


def _environment(**extra):
    path = os.pathsep.join(
        [str(REPO_ROOT), str(REPO_ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    )
    return {"PYTHONPATH": path, **extra}


def _backend_script(script, saved_models):
    """`script` after loading the saved digits models, printing `out`."""
    return (
        "import json, sys\n"
        'sys.modules["tensorflow"] = None\n'
        "import keras, keras_drelu, numpy as np\n"
        f"model = keras.saving.load_model({str(saved_models / 'relu.keras')!r})\n"
        f"capped = keras.saving.load_model({str(saved_models / 'srelu.keras')!r})\n"
        + script
        + "\nprint(json.dumps(out))\n"
    )


def _assert_matches(out, reference):
    """Another backend's numbers against TensorFlow's."""
    for name, accuracy in out["accuracies"].items():
        assert abs(accuracy - reference["accuracies"][name]) <= TOLERANCE, (
            name, accuracy, reference["accuracies"][name]
        )
    # The evaluation runs on 60 digits: at most one of them apart.
    report, expected = out["report"], reference["report"]
    for name, accuracy in expected["accuracy"].items():
        assert abs(report["accuracy"][name] - accuracy) <= 1 / 60, name
    for key in ("zero_gradient_share", "large_eps_accuracy"):
        assert report[key] == pytest.approx(expected[key], abs=1 / 60), key
    for name, value in reference["analysis"].items():
        np.testing.assert_allclose(
            out["analysis"][name], value, rtol=1e-4, atol=1e-6, err_msg=name
        )


# Run with KERAS_BACKEND=jax, TensorFlow blocked and two host devices.
JAX_SCRIPT = """
import hashlib
import jax
from backend_cases import backend_numbers, digits_test, evaluation
from keras_drelu import backends
from keras_drelu.attacks import projected_gradient_descent, randomness

assert keras.backend.backend() == "jax" and len(jax.devices()) == 2
out = backend_numbers(model, capped)
x, y = digits_test()
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

# Two devices give the report of one.
two, two_examples = evaluation(capped, x, y, distribute=True)
out["same_report"] = out["report"] == two
out["same_examples"] = (
    out["examples"] == hashlib.sha256(two_examples.tobytes()).hexdigest())
out["data_parallel"] = backends.distribution(
    keras.distribution.DataParallel()).replicas
try:
    backends.distribution("gpus")
except ValueError as error:
    out["bad_distribute"] = str(error)
"""


@pytest.mark.slow
def test_jax_without_tensorflow_matches_tensorflow(
    saved_models, tensorflow_numbers, run_python
):
    script = _backend_script(JAX_SCRIPT, saved_models)
    env = _environment(
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    out = json.loads(run_python(script, env=env).splitlines()[-1])
    assert sorted(out["accuracies"]) == sorted(tensorflow_numbers["accuracies"])
    _assert_matches(out, tensorflow_numbers)
    # Every backend draws the same random numbers.
    keys = randomness.stream(randomness.keys(7, 5), 3)
    np.testing.assert_array_equal(out["uniform"], reference_uniform(keys, 6, 4))

    inner = out["inner"]
    assert inner["within"] <= 0.1 + 1e-6 and inner["accuracy"] < 0.7
    assert inner["new_state"] and inner["weights_read"] and inner["traces"] == 1

    assert out["same_report"] and out["same_examples"]
    assert out["data_parallel"] == 2
    assert "on the JAX backend" in out["bad_distribute"]


TORCH_SCRIPT = """
from backend_cases import backend_numbers
from keras_drelu.evaluation import evaluate_robustness

assert keras.backend.backend() == "torch"
out = backend_numbers(model, capped)
try:
    evaluate_robustness(
        model, np.zeros((4, 8, 8, 1), "float32"), np.zeros(4, "int64"),
        eps=0.1, distribute=True)
except ValueError as error:
    out["distribute"] = str(error)
"""

@pytest.mark.slow
def test_torch_without_tensorflow_matches_tensorflow(
    saved_models, tensorflow_numbers, run_python
):
    script = _backend_script(TORCH_SCRIPT, saved_models)
    # One thread: the eager steps on a tiny net are too small to share.
    env = _environment(KERAS_BACKEND="torch", OMP_NUM_THREADS="1")
    out = json.loads(run_python(script, env=env).splitlines()[-1])
    assert sorted(out["accuracies"]) == sorted(tensorflow_numbers["accuracies"])
    _assert_matches(out, tensorflow_numbers)
    assert "on the PyTorch backend" in out["distribute"]


MIRRORED_SCRIPT = """
import json
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
import keras_drelu
from backend_cases import digits_test
from keras_drelu.attacks import APGD, BPDA, Square
from keras_drelu.evaluation import evaluate_robustness

x, y = digits_test()
x, y = x[:60], y[:60]
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
