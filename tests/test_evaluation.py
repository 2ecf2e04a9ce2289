"""Tests of keras_drelu.evaluation on small digit classifiers trained here."""

import csv
import dataclasses
import io
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import Counting

from keras_drelu import DReLU
from keras_drelu import SReLU
from keras_drelu.attacks import FGSM
from keras_drelu.attacks import Attack
from keras_drelu.attacks import PGD
from keras_drelu.attacks import Square
from keras_drelu.evaluation import FLAG_DOCS
from keras_drelu.evaluation import SUITES
from keras_drelu.evaluation import AttackResult
from keras_drelu.evaluation import build_attack
from keras_drelu.evaluation import contains_capped_relu
from keras_drelu.evaluation import eps_sweep
from keras_drelu.evaluation import evaluate_robustness
from keras_drelu.evaluation import evaluation_inputs
from keras_drelu.evaluation import examples_from_dataset
from keras_drelu.evaluation import run_cascade
from keras_drelu.evaluation import run_checks
from keras_drelu.evaluation.cascade import Cascade
from keras_drelu.evaluation.cascade import CascadeResult
from keras_drelu.evaluation.cascade import predictor
from keras_drelu.evaluation.checks import CHECKS
from keras_drelu.evaluation.checks import CheckContext
from keras_drelu.evaluation.checks import CheckResults
from keras_drelu.evaluation.checks import flag_attacks
from keras_drelu.evaluation.checks import flag_large_eps
from keras_drelu.evaluation.checks import flag_not_adaptive
from keras_drelu.evaluation.checks import flag_results
from keras_drelu.evaluation.checks import flag_straight_through
from keras_drelu.evaluation.inputs import check_settings
from keras_drelu.evaluation.inputs import detect_outputs
from keras_drelu.evaluation.report import assemble_report
from keras_drelu.evaluation.suites import KIND_ORDER
from keras_drelu.evaluation.suites import BuiltSuite
from keras_drelu.evaluation.suites import build_suite
from keras_drelu.evaluation.suites import default_suite

# Tiny budgets: these tests check the machinery, not the attacks' strength.
QUICK = {
    "PGD": {"steps": 10},
    "APGD-CE": {"steps": 10},
    "APGD-DLR": {"steps": 10},
    "APGD-T": {"steps": 10, "n_target_classes": 3},
    "FAB-T": {"steps": 10, "n_target_classes": 3},
    "CW-L2": {"max_iterations": 20, "binary_search_steps": 2},
    "Square": {"n_queries": 100},
}


@pytest.fixture(scope="module")
def data(digits):
    x, y = digits
    return x[1400:1550], y[1400:1550]


@pytest.fixture(scope="module")
def model(digits_relu):
    return digits_relu


@pytest.fixture(scope="module")
def capped_model(digits_srelu):
    return digits_srelu


@pytest.fixture(scope="module")
def report(model, data):
    x, y = data
    return evaluate_robustness(
        model,
        x,
        y,
        eps=0.1,
        overrides=QUICK,
        verbose=False,
        sweep_eps=[0.05, 0.5],
    )


@pytest.fixture(scope="module")
def capped_report(capped_model, data):
    x, y = data
    return evaluate_robustness(
        capped_model, x, y, eps=0.2, overrides=QUICK, verbose=False
    )


def test_report_numbers_are_consistent(model, data, report):
    x, y = data
    predictions = np.argmax(model.predict(x, verbose=0), axis=1)
    assert report.suite == "standard" and report.cascade
    assert report.clean_accuracy == pytest.approx(np.mean(predictions == y))
    assert list(report.accuracy) == ["APGD-CE", "APGD-T", "FAB-T", "Square"]
    assert report.accuracy["APGD-CE"] < report.clean_accuracy - 0.2
    assert report.worst_case_accuracy == pytest.approx(report.robust.mean())
    assert report.worst_case_accuracy <= min(report.accuracy.values())
    assert set(report.timings) >= {"clean", "APGD-CE", "APGD-T", "Square"}
    # The cascade attacks only what the previous attacks left robust.
    robust_left = round(report.accuracy["APGD-CE"] * report.n_examples)
    assert report.results[1].attacked == robust_left
    # Kept adversarial examples really fool the model.
    broken = ~report.robust & (predictions == y)
    adv_predictions = np.argmax(model.predict(report.x_adv, verbose=0), axis=1)
    assert np.all(adv_predictions[broken] != y[broken])
    assert np.all(np.abs(report.x_adv - x).max(axis=(1, 2, 3)) <= 0.1 + 1e-6)


def test_undefended_model_passes_the_masking_checks(report):
    codes = {flag.code for flag in report.flags}
    assert report.zero_gradient_share == 0.0
    assert report.large_eps_accuracy == 0.0
    assert not codes & {
        "zero-gradients",
        "large-eps-not-broken",
        "not-adaptive",
    }
    assert report.sweep.reaches_zero()
    assert report.sweep.accuracy[0] >= report.sweep.accuracy[1]


def test_capped_model_gets_adaptive_suite_and_is_flagged(capped_report):
    codes = {flag.code for flag in capped_report.flags}
    assert capped_report.suite == "adaptive"
    assert {"BPDA(APGD-CE)", "BPDA(APGD-T)", "Transfer(APGD-CE)"} <= set(
        capped_report.accuracy
    )
    assert {"zero-gradients", "large-eps-not-broken", "adaptive-gain"} <= codes
    assert capped_report.zero_gradient_share > 0.3
    non_adaptive = capped_report.accuracy["Square"]
    assert capped_report.worst_case_accuracy < non_adaptive - 0.2
    assert all(flag.code in FLAG_DOCS for flag in capped_report.flags)


def test_paper_suite_runs_each_attack_on_every_input(capped_model, data):
    x, y = data
    report = evaluate_robustness(
        capped_model,
        x,
        y,
        eps=0.2,
        suite="paper",
        overrides=QUICK,
        verbose=False,
        checks_enabled=False,
    )
    assert not report.cascade
    assert list(report.accuracy) == [
        "FGSM",
        "PGD",
        "APGD-CE",
        "APGD-DLR",
        "CW-L2",
        "Square",
    ]
    correct = round(report.clean_accuracy * len(x))
    assert all(r.attacked == correct for r in report.results)
    cw = next(r for r in report.results if r.name == "CW-L2")
    assert (cw.norm, cw.eps) == ("l2", 18.0)
    assert any(
        "CW-L2 uses another threat model" in note for note in report.notes
    )
    codes = {flag.code for flag in report.flags}
    assert {"not-adaptive", "black-box-stronger"} <= codes
    # Per input, the worst case is at most every attack of the threat model.
    linf = [r.accuracy for r in report.results if r.norm == "linf"]
    assert report.worst_case_accuracy <= min(linf)


def test_suites_are_defined_in_one_place():
    assert SUITES["standard"].attacks == ("APGD-CE", "APGD-T", "FAB-T", "Square")
    assert set(SUITES["standard"].attacks) < set(SUITES["adaptive"].attacks)
    assert SUITES["paper"].attacks == (
        "FGSM",
        "PGD",
        "APGD-CE",
        "APGD-DLR",
        "CW-L2",
        "Square",
    )


def test_overrides_reach_wrapped_attacks(capped_model):
    attack = build_attack(
        "BPDA(APGD-T)",
        capped_model,
        {"eps": 0.1},
        overrides={"APGD-T": {"steps": 7}},
    )
    assert attack.name == "BPDA(APGD-T)" and attack.attack.steps == 7
    square = build_attack("Square", capped_model, {"eps": 0.1})
    assert square.n_queries == 5000 and square.p_init == 0.8


def test_custom_list_of_attacks_and_probability_model(model, data):
    x, y = data
    softmax = keras.Sequential(
        [keras.Input((8, 8, 1)), model, keras.layers.Softmax()]
    )
    report = evaluate_robustness(
        softmax,
        x,
        y,
        eps=0.1,
        verbose=False,
        checks_enabled=False,
        suite=[
            Square(softmax, eps=0.1, n_queries=50, seed=0),
            FGSM(softmax, eps=0.1),
            PGD(softmax, eps=0.1, steps=5),
        ],
    )
    assert report.suite == "custom"
    # The cascade puts iterative white-box attacks first, black-box last.
    assert [r.name for r in report.results] == ["PGD", "FGSM", "Square"]
    assert report.accuracy["PGD"] < report.clean_accuracy - 0.2


def test_l2_evaluation_runs_square_l2(model, data):
    x, y = data
    report = evaluate_robustness(
        model,
        x[:40],
        y[:40],
        eps=1.0,
        norm="l2",
        overrides=QUICK,
        verbose=False,
        checks_enabled=False,
    )
    assert "Square" in report.accuracy and not report.notes
    assert report.accuracy["APGD-CE"] < report.clean_accuracy


def test_flag_rules_on_constructed_results():
    correct = np.array([True] * 8 + [False] * 2)

    def entry(name, kind, accuracy, broken_indices):
        broken = np.zeros(10, bool)
        broken[list(broken_indices)] = True
        result = AttackResult(
            name, kind, "linf", 0.1, accuracy, 8, len(broken_indices), 0.0
        )
        return result, broken

    pgd = entry("PGD", "white-box", 0.6, [0, 1])
    fgsm = entry("FGSM", "single-step", 0.5, [2])
    square = entry("Square", "black-box", 0.3, [3, 5])
    bpda = entry("BPDA(PGD)", "adaptive", 0.2, [4])
    codes = [
        f.code for f in flag_results([pgd, fgsm, square, bpda], correct, True)
    ]
    assert codes == [
        "black-box-stronger",
        "fgsm-stronger-than-pgd",
        "adaptive-gain",
    ]
    # Independent runs compare accuracies; nothing here is suspicious.
    fgsm_weak = entry("FGSM", "single-step", 0.7, [0])
    square_weak = entry("Square", "black-box", 0.7, [1])
    assert flag_results([pgd, fgsm_weak, square_weak], correct, False) == []


def test_renderings(report, tmp_path):
    markdown = report.to_markdown()
    assert str(report) == markdown
    assert "| APGD-CE | white-box | Linf eps=0.1 |" in markdown
    assert "Worst-case robust accuracy" in markdown and "### Flags" in markdown
    parsed = json.loads(report.to_json())
    assert parsed["worst_case_accuracy"] == report.worst_case_accuracy
    assert parsed["accuracy"] == report.accuracy
    assert parsed["threat_model"] == {"norm": "linf", "eps": 0.1}
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert [row["attack"] for row in rows] == [
        "clean",
        "APGD-CE",
        "APGD-T",
        "FAB-T",
        "Square",
        "worst-case",
    ]
    assert float(rows[-1]["accuracy"]) == pytest.approx(
        report.worst_case_accuracy
    )
    path = report.save_examples_png(tmp_path / "examples.png", n=4)
    image = __import__("matplotlib.image").image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_verbose_prints_flags_and_progress(capped_model, data, capsys):
    x, y = data
    evaluate_robustness(
        capped_model,
        x[:30],
        y[:30],
        eps=0.2,
        suite=[FGSM(capped_model, eps=0.2)],
    )
    captured = capsys.readouterr()
    assert "WARNING [zero-gradients]" in captured.out
    assert "WARNING [not-adaptive]" in captured.out
    assert "evaluate_robustness" in captured.err


def test_eps_sweep_reaches_zero_only_without_masking(model, capped_model, data):
    x, y = data
    radii = [0.05, 0.3, 1.0]
    plain = eps_sweep(model, x, y, radii, overrides=QUICK)
    capped = eps_sweep(capped_model, x, y, radii, overrides=QUICK)
    assert plain.reaches_zero() and not capped.reaches_zero()
    assert plain.eps == radii and "| accuracy |" in plain.to_markdown()


def _relu6_model():
    # relu6 is rewritten in a copy for BPDA and uncapped in another for the
    # transfer attack: the surrogates are models of their own.
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(16),
        keras.layers.ReLU(6.0), keras.layers.Dense(10),
    ])


def test_wrapped_attacks_of_a_suite_or_sweep_share_one_surrogate(
    data, monkeypatch
):
    from keras_drelu.attacks import adaptive

    model = _relu6_model()
    made = Counting(adaptive.straight_through_model)
    monkeypatch.setattr(adaptive, "straight_through_model", made)
    built = build_suite("adaptive", model, {"eps": 0.1}, n_classes=10)
    wrapped = {a.name: a for a in built.attacks if "(" in a.name}
    assert sorted(wrapped) == [
        "BPDA(APGD-CE)", "BPDA(APGD-T)", "Transfer(APGD-CE)"
    ]
    assert made.calls == 1
    assert wrapped["BPDA(APGD-CE)"].surrogate is wrapped["BPDA(APGD-T)"].surrogate
    assert wrapped["BPDA(APGD-CE)"].surrogate is not model
    assert wrapped["Transfer(APGD-CE)"].surrogate is not model

    x, y = data
    made.calls = 0
    eps_sweep(model, x[:8], y[:8], [0.05, 0.1, 0.2], attack="BPDA(PGD)",
              overrides={"PGD": {"steps": 2}})
    assert made.calls == 1


def test_a_shared_surrogate_gives_the_examples_of_its_own(data):
    from keras_drelu.attacks import BPDA

    x, y = data
    model = _relu6_model()
    first = BPDA(PGD(model, eps=0.1, steps=3, seed=0))
    shared = BPDA(PGD(model, eps=0.1, steps=3, seed=0),
                  surrogate=first.surrogate)
    alone = BPDA(PGD(model, eps=0.1, steps=3, seed=0))
    assert shared.surrogate is first.surrogate
    np.testing.assert_array_equal(
        shared.generate(x[:16], y[:16]), alone.generate(x[:16], y[:16])
    )


def test_contains_capped_relu_searches_nested_models():
    inner = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(3), DReLU()]
    )
    outer = keras.Sequential([keras.Input((3,)), inner, keras.layers.Dense(2)])
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert contains_capped_relu(outer) and not contains_capped_relu(plain)


def test_subclassed_capped_model_is_seen_through_but_has_no_twin(data):
    x, y = data

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.layers_ = [
                keras.layers.Flatten(),
                keras.layers.Dense(10),
                SReLU(1.0),
            ]

        def call(self, inputs):
            for layer in self.layers_:
                inputs = layer(inputs)
            return inputs

    keras.utils.set_random_seed(0)
    net = Net()
    net(x[:1])
    report = evaluate_robustness(
        net,
        x[:20],
        y[:20],
        eps=0.1,
        overrides=QUICK,
        verbose=False,
        checks_enabled=False,
    )
    # BPDA sees through the caps of a subclassed model in place; only the
    # uncapped twin needs a copy, which a subclassed model cannot give.
    assert report.suite == "adaptive"
    assert {"BPDA(APGD-CE)", "BPDA(APGD-T)"} <= set(report.accuracy)
    unavailable = [f for f in report.flags if f.code == "adaptive-unavailable"]
    assert len(unavailable) == 1
    assert unavailable[0].message.startswith("Transfer(APGD-CE): ")


class Block(keras.layers.Layer):
    """A custom layer: Keras tracks its sublayers, clone_model cannot."""

    def __init__(self, dense, activation, **kwargs):
        super().__init__(**kwargs)
        self.dense = dense
        self.activation = activation

    def call(self, x):
        return self.activation(self.dense(x))


def _rewired(trained, activation, custom):
    """`trained`'s layers around `activation`, in a custom layer or not."""
    inputs = keras.Input((8, 8, 1))
    flat = trained.layers[0](inputs)
    dense = trained.layers[1]
    hidden = (
        Block(dense, activation, name="block")(flat)
        if custom
        else activation(dense(flat))
    )
    return keras.Model(inputs, trained.layers[3](hidden))


def test_caps_the_evaluation_used_to_miss_get_the_adaptive_suite(
    capped_model, capped_report, data
):
    x, y = data
    # The capped digits net rebuilt with its cap inside a custom layer, and
    # with the cap written as keras.layers.ReLU(max_value=0.01).
    custom = _rewired(capped_model, SReLU(0.01, name="cap"), custom=True)
    relu_max = _rewired(
        capped_model, keras.layers.ReLU(max_value=0.01), custom=False
    )
    for model in (custom, relu_max):
        np.testing.assert_allclose(
            model(x).numpy(), capped_model(x).numpy(), rtol=1e-6
        )
        report = evaluate_robustness(
            model, x, y, eps=0.2, overrides=QUICK, verbose=False,
            checks_enabled=False,
        )
        assert report.suite == "adaptive"
        # BPDA sees through the cap: well below what the plain attacks
        # (FAB-T and Square included) leave, as on the SReLU model itself.
        assert report.accuracy["BPDA(APGD-T)"] < report.accuracy["Square"] - 0.1
        assert report.worst_case_accuracy == pytest.approx(
            capped_report.worst_case_accuracy, abs=0.1
        )
    codes = [flag.code for flag in report.flags]
    assert "adaptive-unavailable" not in codes and "adaptive-gain" in codes
    flagged = evaluate_robustness(
        custom, x[:30], y[:30], eps=0.2, suite=[FGSM(custom, eps=0.2)],
        verbose=False, checks_enabled=False,
    )
    assert "not-adaptive" in [flag.code for flag in flagged.flags]


class Precompiled(keras.layers.Layer):
    """Calls its cap in a function traced once, at model construction.

    A straight-through scope entered later cannot reach into that trace:
    BPDA then runs as the plain attack, and the evaluation must say so.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.cap = SReLU(0.01, name="cap")
        self._capped = tf.function(
            self.cap, input_signature=[tf.TensorSpec([None, 64])]
        )

    def call(self, x):
        return self._capped(x)


def test_bpda_that_cannot_see_through_is_flagged(capped_model, data):
    x, y = data
    model = _rewired(capped_model, Precompiled(name="precompiled"), custom=False)
    attack = build_attack(
        "BPDA(PGD)", model, {"eps": 0.2}, overrides={"PGD": {"steps": 5}}
    )
    check = attack.gradient_check(x[:8], y[:8])
    assert check.clipping is None and not check.differs.any()
    report = evaluate_robustness(
        model, x[:30], y[:30], eps=0.2, suite=[attack], verbose=False,
        checks_enabled=False,
    )
    unavailable = [f for f in report.flags if f.code == "adaptive-unavailable"]
    assert len(unavailable) == 1
    assert "BPDA(PGD): its input gradient equals the exact" in unavailable[0].message
    # The same cap, called directly, is seen through and not flagged.
    working = build_attack("BPDA(PGD)", capped_model, {"eps": 0.2})
    check = working.gradient_check(x[:8], y[:8])
    assert check.clipping.all() and check.differs.all()
    assert flag_straight_through([working], x, y) == []


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"eps": 0}, ValueError, "eps=0"),
        ({"norm": "l1"}, ValueError, "norm='l1'"),
        ({"suite": "bogus"}, ValueError, "suite='bogus'"),
        ({"suite": []}, ValueError, "suite=\\[\\]"),
        ({"suite": ["PGD"]}, ValueError, "list of `Attack` instances"),
        ({"overrides": {"APGD": {}}}, ValueError, "unknown attack 'APGD'"),
        ({"batch_size": -2}, ValueError, "batch_size=-2"),
        ({"n_examples": 0}, ValueError, "n_examples=0"),
        ({"cascade": "yes"}, TypeError, "cascade='yes'"),
        ({"checks_enabled": 1}, TypeError, "checks_enabled=1"),
        ({"sweep_eps": [0.1, -1]}, ValueError, "sweep_eps=-1"),
        ({"eps": None}, TypeError, "eps=None"),
    ],
)
def test_bad_arguments_raise_clear_errors(model, data, kwargs, error, message):
    x, y = data
    arguments = {"eps": 0.1, "verbose": False} | kwargs
    with pytest.raises(error, match=message):
        evaluate_robustness(model, x[:4], y[:4], **arguments)


def test_bad_inputs_raise_clear_errors(model, data):
    x, y = data
    with pytest.raises(ValueError, match="integer class label"):
        evaluate_robustness(model, x[:4], y[:4].astype("float32"), eps=0.1)
    with pytest.raises(ValueError, match="within clip_values"):
        evaluate_robustness(model, x[:4] * 3, y[:4], eps=0.1)
    with pytest.raises(ValueError, match="non-empty batch"):
        evaluate_robustness(model, x[:0], y[:0], eps=0.1)
    with pytest.raises(ValueError, match="eps_values"):
        eps_sweep(model, x[:4], y[:4], [])


def test_attacks_needing_more_classes_are_skipped_with_a_note(data):
    x, _ = data
    three = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    y3 = np.argmax(three.predict(x[:20], verbose=0), axis=1)
    report = evaluate_robustness(
        three,
        x[:20],
        y3,
        eps=0.1,
        suite="paper",
        overrides=QUICK,
        verbose=False,
        checks_enabled=False,
    )
    assert "APGD-DLR" in report.accuracy and "APGD-T" not in report.accuracy
    report = evaluate_robustness(
        three,
        x[:20],
        y3,
        eps=0.1,
        overrides=QUICK,
        verbose=False,
        checks_enabled=False,
    )
    assert list(report.accuracy) == ["APGD-CE", "FAB-T", "Square"]
    assert any("APGD-T skipped" in note for note in report.notes)


# The steps of `evaluate_robustness`, each on its own.


def test_dataset_input_gives_the_same_report_as_arrays(model, data):
    x, y = data
    arrays = evaluate_robustness(
        model, x[:40], y[:40], eps=0.1, overrides=QUICK, verbose=False,
        checks_enabled=False,
    )
    batched = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    unbatched = tf.data.Dataset.from_tensor_slices((x, y)).repeat()
    for dataset in (batched, unbatched):
        report = evaluate_robustness(
            model, dataset, eps=0.1, n_examples=40, overrides=QUICK,
            verbose=False, checks_enabled=False,
        )
        assert report.n_examples == 40
        np.testing.assert_array_equal(report.x, x[:40])
        np.testing.assert_array_equal(report.y, y[:40])
        assert report.accuracy == arrays.accuracy
        assert report.worst_case_accuracy == arrays.worst_case_accuracy


def test_evaluation_inputs_take_the_first_examples():
    x = np.linspace(0, 1, 10 * 4, dtype="float32").reshape(10, 4)
    y = np.arange(10)
    xs, ys = evaluation_inputs(x, y, n_examples=3)
    np.testing.assert_array_equal(xs, x[:3])
    assert ys.dtype == np.int64 and ys.tolist() == [0, 1, 2]
    # A dataset shorter than `n_examples` gives what it has.
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    xs, ys = evaluation_inputs(dataset, n_examples=50)
    np.testing.assert_array_equal(xs, x)
    assert examples_from_dataset(dataset.unbatch())[1].tolist() == list(y)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda x, y, ds: evaluation_inputs(ds, y), "`y` should be None"),
        (lambda x, y, ds: evaluation_inputs(x), "`y` is needed"),
        (
            lambda x, y, ds: evaluation_inputs(ds.repeat()),
            "`n_examples` is needed for an infinite dataset",
        ),
        (
            lambda x, y, ds: evaluation_inputs(x, y, n_examples=0),
            "n_examples=0",
        ),
        (
            lambda x, y, ds: evaluation_inputs(x, y, n_examples=True),
            "n_examples=True",
        ),
        (
            lambda x, y, ds: evaluation_inputs(ds.map(lambda a, b: a)),
            "`\\(image, label\\)` pairs",
        ),
        (
            lambda x, y, ds: evaluation_inputs(
                ds.map(lambda a, b: (a, tf.one_hot(b, 10)))
            ),
            "labels of shape \\(None, 10\\)",
        ),
        (
            lambda x, y, ds: evaluation_inputs(ds.take(0)),
            "empty dataset",
        ),
        (
            lambda x, y, ds: evaluation_inputs(x * 3, y),
            "within clip_values",
        ),
    ],
)
def test_evaluation_inputs_reject_bad_input(make, message):
    x = np.full((6, 4), 0.5, "float32")
    y = np.arange(6)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    with pytest.raises(ValueError, match=message):
        make(x, y, dataset)


def test_check_settings_and_detect_outputs(model, data):
    x, _ = data
    settings = check_settings(0.1, "l2", clip_values=[0, 1], seed=None)
    assert settings.threat_model == ("l2", 0.1)
    assert settings.attack_arguments() == {
        "eps": 0.1,
        "norm": "l2",
        "clip_values": (0.0, 1.0),
        "outputs": "auto",
        "batch_size": 256,
        "seed": None,
    }
    resolved, n_classes = detect_outputs(model, x, settings)
    assert (resolved.outputs, n_classes) == ("logits", 10)
    softmax = keras.Sequential(
        [keras.Input((8, 8, 1)), model, keras.layers.Softmax()]
    )
    assert detect_outputs(softmax, x, settings)[0].outputs == "probabilities"
    forced = dataclasses.replace(settings, outputs="logits")
    assert detect_outputs(softmax, x, forced)[0].outputs == "logits"
    for bad in ({"batch_size": 2.0}, {"seed": True}, {"outputs": "scores"}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))}="):
            check_settings(0.1, **bad)


def test_build_suite_orders_a_cascade_by_kind_and_notes_what_it_skips(
    model, capped_model
):
    common = {"eps": 0.1, "norm": "linf", "seed": 0}
    built = build_suite("adaptive", capped_model, common, n_classes=10)
    assert built.name == "adaptive" and built.cascade
    assert [a.name for a in built.attacks] == [
        "APGD-CE",
        "APGD-T",
        "FAB-T",
        "Square",
        "Transfer(APGD-CE)",
        "BPDA(APGD-CE)",
        "BPDA(APGD-T)",
    ]
    assert [a.kind for a in built.attacks] == sorted(
        (a.kind for a in built.attacks), key=KIND_ORDER.index
    )
    custom = [Square(model, eps=0.1), FGSM(model, eps=0.1)]
    assert [
        a.name for a in build_suite(custom, model, common, n_classes=10).attacks
    ] == ["FGSM", "Square"]
    kept = build_suite(custom, model, common, n_classes=10, cascade=False)
    assert not kept.cascade and [a.name for a in kept.attacks] == [
        "Square",
        "FGSM",
    ]
    l2 = build_suite(
        "standard", model, common | {"norm": "l2"}, n_classes=3
    )
    assert [a.name for a in l2.attacks] == ["APGD-CE", "FAB-T", "Square"]
    assert l2.notes == [
        "APGD-T skipped: it needs at least 4 classes and the model has 3.",
    ]
    with pytest.raises(ValueError, match="cascade=1"):
        build_suite("standard", model, common, n_classes=10, cascade=1)
    assert default_suite(capped_model) == "adaptive"
    assert default_suite(model) == "standard"


class _Shift(Attack):
    """Moves every input by `-shift`: a known answer for the cascade."""

    def __init__(self, model, *, eps, shift, name):
        super().__init__(model, eps=eps)
        self.shift, self.name = shift, name

    def generate(self, x, y):
        return np.clip(x - self.shift, 0.0, 1.0).astype("float32")


def _threshold_model():
    """Class 0 exactly when the single input is above 0.5 (ties: class 0)."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2)])
    model.set_weights(
        [np.array([[1.0, -1.0]], "float32"), np.array([-0.5, 0.5], "float32")]
    )
    return model


def test_cascade_keeps_the_books_per_input():
    model = _threshold_model()
    x = np.array([[0.9], [0.8], [0.7], [0.2]], "float32")
    y = np.zeros(4, "int64")
    predict = predictor(model, 2)

    def attacks():
        return [
            _Shift(model, eps=0.5, shift=0.3, name="A"),  # breaks 0.7
            _Shift(model, eps=0.5, shift=0.35, name="B"),  # breaks 0.8, 0.7
            _Shift(model, eps=0.45, shift=0.45, name="C"),  # breaks all three
        ]

    result = run_cascade(
        attacks(), x, y, predict, threat_model=("linf", 0.5),
        clip_values=(0.0, 1.0),
    )
    assert result.clean_correct.tolist() == [True, True, True, False]
    a, b, c = result.results
    assert (a.attacked, a.broken, a.accuracy) == (3, 1, 0.5)
    assert (b.attacked, b.broken, b.accuracy) == (2, 1, 0.25)
    # C has its own threat model: it attacks every correct input and is
    # left out of the worst case.
    assert (c.attacked, c.broken, c.accuracy) == (3, 3, 0.0)
    assert [r for r, _ in result.entries] == [a, b]
    assert result.robust.tolist() == [True, False, False, False]
    np.testing.assert_allclose(result.x_adv[:, 0], [0.9, 0.45, 0.4, 0.2])
    assert result.adv_pred.tolist() == [0, 1, 1, 1]
    assert result.notes == [
        "C uses another threat model (linf, eps=0.45); it is not part of the "
        "worst case."
    ]
    assert list(result.timings) == ["clean", "A", "B", "C"]
    # Without a cascade each attack runs on every correct input; the first
    # adversarial example found is still the one kept.
    independent = run_cascade(
        attacks(), x, y, predict, threat_model=("linf", 0.5),
        clip_values=(0.0, 1.0), cascade=False,
    )
    a, b, _ = independent.results
    assert (a.accuracy, b.attacked, b.broken, b.accuracy) == (
        0.5, 3, 2, 0.25
    )
    np.testing.assert_allclose(independent.x_adv[2], [0.4])


def test_cascade_stops_an_attack_that_leaves_its_threat_model():
    model = _threshold_model()
    x = np.array([[0.9]], "float32")
    cascade = Cascade(
        x, np.zeros(1, "int64"), predictor(model, 1),
        threat_model=("linf", 0.1), clip_values=(0.0, 1.0),
    )
    with pytest.raises(RuntimeError, match="Attack far left its threat"):
        cascade.run_attack(_Shift(model, eps=0.1, shift=0.5, name="far"))


def test_run_checks_measures_each_check_of_the_table():
    # An input-blind model: always class 1, input gradient exactly zero.
    blind = keras.Sequential(
        [keras.Input((4,)), keras.layers.Rescaling(0.0), keras.layers.Dense(3)]
    )
    blind.layers[-1].set_weights(
        [np.ones((4, 3), "float32"), np.array([0.0, 2.0, 0.0], "float32")]
    )
    x = np.random.default_rng(0).uniform(size=(20, 4)).astype("float32")
    y = np.ones(20, "int64")
    context = CheckContext(
        blind, x, y, n_examples=40, n_classes=3,
        settings=check_settings(0.1, outputs="logits"),
        predict=predictor(blind, 20),
    )
    checked = run_checks(context, ["zero-gradient check"])
    assert checked.values == {"zero_gradient_share": 1.0}
    assert [f.code for f in checked.flags] == ["zero-gradients"]
    assert list(checked.timings) == ["zero-gradient check"]
    checked = run_checks(context)
    assert list(checked.values) == [field for field, _ in CHECKS.values()]
    # No radius moves a blind model: the 20 correct inputs of 40 stay so.
    assert checked.values["large_eps_accuracy"] == 0.5
    assert [f.code for f in checked.flags] == [
        "zero-gradients",
        "large-eps-not-broken",
    ]
    with pytest.raises(ValueError, match="checks='bogus'"):
        run_checks(context, ["bogus"])


def test_flag_attacks_adds_not_adaptive_for_capped_models():
    correct = np.ones(4, bool)
    white = AttackResult("PGD", "white-box", "linf", 0.1, 0.5, 4, 2, 0.0)
    run = CascadeResult(
        threat_model=("linf", 0.1), cascade=True, clean_pred=np.zeros(4),
        clean_correct=correct, results=[white],
        broken=[np.array([True, True, False, False])], x_adv=None,
        adv_pred=None, timings={}, notes=[],
    )
    assert flag_attacks(run, capped=False) == []
    assert [f.code for f in flag_attacks(run, capped=True)] == [
        "not-adaptive"
    ]
    adaptive = AttackResult("BPDA(PGD)", "adaptive", "linf", 0.1, 0.5, 2, 0, 0)
    assert flag_not_adaptive(True, [(adaptive, np.zeros(4, bool))]) == []


def test_assemble_report_puts_each_step_in_its_place():
    x = np.zeros((4, 1), "float32")
    y = np.zeros(4, "int64")
    rows = [
        AttackResult("PGD", "white-box", "linf", 0.1, 0.5, 3, 1, 1.0),
        AttackResult("CW-L2", "white-box", "l2", 18.0, 0.25, 3, 2, 2.0),
    ]
    run = CascadeResult(
        threat_model=("linf", 0.1), cascade=False,
        clean_pred=np.array([0, 0, 0, 1]),
        clean_correct=np.array([True, True, True, False]), results=rows,
        broken=[np.array([True, False, False, False]),
                np.array([False, True, True, False])],
        x_adv=x + 0.1, adv_pred=np.array([1, 0, 0, 1]),
        timings={"clean": 0.5, "PGD": 1.0, "CW-L2": 2.0},
        notes=["CW-L2 uses another threat model"],
    )
    suite = BuiltSuite("paper", [], False, notes=["Square skipped"])
    checks = CheckResults(
        values={"zero_gradient_share": 0.25}, flags=[],
        timings={"zero-gradient check": 3.0},
    )
    report = assemble_report(
        model_name="m", suite=suite, settings=check_settings(0.1), x=x, y=y,
        run=run, checks=checks, flags=["f"], timings={"eps sweep": 4.0},
    )
    assert report.suite == "paper" and not report.cascade
    assert report.clean_accuracy == 0.75
    # Only the L-inf attack counts towards the worst case.
    assert report.robust.tolist() == [False, True, True, False]
    assert report.worst_case_accuracy == 0.5
    assert report.accuracy == {"PGD": 0.5, "CW-L2": 0.25}
    assert report.notes == ["Square skipped", "CW-L2 uses another threat model"]
    assert list(report.timings) == [
        "clean", "PGD", "CW-L2", "zero-gradient check", "eps sweep"
    ]
    assert report.zero_gradient_share == 0.25
    assert report.large_eps_accuracy is None and report.flags == ["f"]


# The checks and flags of AutoAttack's checks.py.


def _blind(n_classes, favourite=1):
    """An input-blind model: always class `favourite`, zero input gradient."""
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Rescaling(0.0),
         keras.layers.Dense(n_classes)]
    )
    bias = np.zeros(n_classes, "float32")
    bias[favourite] = 2.0
    model.layers[-1].set_weights([np.ones((4, n_classes), "float32"), bias])
    return model


def _context(model, n_correct, n_examples, n_classes, outputs="logits"):
    x = np.random.default_rng(0).uniform(size=(n_correct, 4)).astype("float32")
    y = np.argmax(model.predict(x, verbose=0), axis=1)
    return CheckContext(
        model, x, y, n_examples=n_examples, n_classes=n_classes,
        settings=check_settings(0.1, outputs=outputs),
        predict=predictor(model, 64),
    )


def test_large_eps_flag_is_relative_to_chance_level():
    # 2% left correct is far from broken with 100 classes (chance 1%), and
    # about broken with 10 (chance 10%).
    assert [f.code for f in flag_large_eps(0.02, 1.0, 100)] == [
        "large-eps-not-broken"
    ]
    assert flag_large_eps(0.02, 1.0, 10) == []
    assert flag_large_eps(0.004, 1.0, 100) == []
    assert "0.5 of chance level for 200 classes" in str(
        flag_large_eps(0.01, 1.0, 200)[0]
    )
    # A blind 100-class model keeps 4 of 100 inputs whatever the radius.
    checked = run_checks(_context(_blind(100), 4, 100, 100), ["large-eps check"])
    assert checked.values == {"large_eps_accuracy": 0.04}
    assert [f.code for f in checked.flags] == ["large-eps-not-broken"]


def test_black_box_stronger_needs_autoattack_margin():
    def flags(n, extra):
        correct = np.ones(n, bool)
        white = np.zeros(n, bool)
        white[:10] = True
        square = np.zeros(n, bool)
        square[10 : 10 + extra] = True
        entries = [
            (AttackResult("APGD-CE", "white-box", "linf", 0.1, 0.5, n, 10, 0),
             white),
            (AttackResult("Square", "black-box", "linf", 0.1, 0.4, n, extra, 0),
             square),
        ]
        return [f for f in flag_results(entries, correct, True)
                if f.code == "black-box-stronger"]

    # One input of 200 is 0.5% but never enough; 15 of 10000 (0.15%) is
    # within AutoAttack's 0.2%.
    assert flags(200, 1) == [] and flags(10000, 15) == []
    (flag,) = flags(200, 3)
    assert flag.message.startswith("Square broke 3 of 200 inputs (1.5%)")
    assert len(flags(10000, 25)) == 1


class MonteCarloDropout(keras.layers.Dropout):
    """Dropout left on at inference."""

    def call(self, inputs, training=None):
        return super().call(inputs, training=True)


def test_randomized_outputs_are_flagged():
    random_model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(16), MonteCarloDropout(0.5),
         keras.layers.Dense(3)]
    )
    checked = run_checks(
        _context(random_model, 16, 16, 3), ["randomness check"]
    )
    assert checked.values["output_variation"] > 0.01
    assert [f.code for f in checked.flags] == ["randomized-outputs"]
    steady = run_checks(_context(_blind(3), 16, 16, 3), ["randomness check"])
    assert steady.values == {"output_variation": 0.0} and steady.flags == []


class HiddenSoftmax(keras.layers.Layer):
    """A softmax inside a custom layer: its logits cannot be recovered."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return keras.ops.softmax(self.dense(x))


def test_probability_outputs_are_flagged_when_logits_are_lost():
    logits = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    recoverable = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]
    )
    inputs = keras.Input((4,))
    hidden = keras.Model(inputs, HiddenSoftmax()(inputs))
    outcomes = {}
    for name, model in [
        ("logits", logits), ("recoverable", recoverable), ("hidden", hidden)
    ]:
        checked = run_checks(_context(model, 8, 8, 3), ["output check"])
        outcomes[name] = (
            checked.values["output_type"], [f.code for f in checked.flags]
        )
    assert outcomes == {
        "logits": ("logits", []),
        "recoverable": ("probabilities (logits recovered)", []),
        "hidden": ("probabilities", ["probability-outputs"]),
    }
    assert {"randomized-outputs", "probability-outputs"} <= set(FLAG_DOCS)
