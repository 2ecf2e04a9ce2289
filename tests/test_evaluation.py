"""Tests of keras_drelu.evaluation on small digit classifiers trained here."""

import csv
import io
import json

import keras
import numpy as np
import pytest

from keras_drelu import DReLU
from keras_drelu import SReLU
from keras_drelu.attacks import FGSM
from keras_drelu.attacks import PGD
from keras_drelu.attacks import Square
from keras_drelu.evaluation import FLAG_DOCS
from keras_drelu.evaluation import SUITES
from keras_drelu.evaluation import AttackResult
from keras_drelu.evaluation import build_attack
from keras_drelu.evaluation import contains_capped_relu
from keras_drelu.evaluation import eps_sweep
from keras_drelu.evaluation import evaluate_robustness
from keras_drelu.evaluation.checks import flag_results

# Tiny budgets: these tests check the machinery, not the attacks' strength.
QUICK = {
    "PGD": {"steps": 10},
    "APGD-CE": {"steps": 10},
    "APGD-DLR": {"steps": 10},
    "APGD-T": {"steps": 10, "n_target_classes": 3},
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
    assert list(report.accuracy) == ["APGD-CE", "APGD-T", "Square"]
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
    assert SUITES["standard"].attacks == ("APGD-CE", "APGD-T", "Square")
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


def test_l2_evaluation_skips_square_with_a_note(model, data):
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
    assert "Square" not in report.accuracy
    assert any("Square skipped" in note for note in report.notes)
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
    square = entry("Square", "black-box", 0.4, [3])
    bpda = entry("BPDA(PGD)", "adaptive", 0.3, [4])
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


def test_contains_capped_relu_searches_nested_models():
    inner = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(3), DReLU()]
    )
    outer = keras.Sequential([keras.Input((3,)), inner, keras.layers.Dense(2)])
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert contains_capped_relu(outer) and not contains_capped_relu(plain)


def test_subclassed_capped_model_flags_missing_adaptive_attacks(data):
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

    net = Net()
    net(x[:1])
    report = evaluate_robustness(
        net,
        x[:20],
        y[:20],
        eps=0.1,
        suite="adaptive",
        overrides=QUICK,
        verbose=False,
        checks_enabled=False,
    )
    codes = [flag.code for flag in report.flags]
    assert codes.count("adaptive-unavailable") == 3


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
    assert list(report.accuracy) == ["APGD-CE", "Square"]
    assert any("APGD-T skipped" in note for note in report.notes)
