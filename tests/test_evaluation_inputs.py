"""What `evaluate_robustness` accepts: inputs of any shape, and no bad input.

The S-ReLU paper's own model is a dense net on flattened MNIST: every
attack and every suite must run on such vector inputs. Labels outside the
model's classes and non-finite inputs must stop the evaluation with an
error naming the bad value, not run and report an accuracy.
"""

import numpy as np
import pytest
import tensorflow as tf
from paper_mlp import paper_mlp

from keras_drelu.attacks import APGD
from keras_drelu.attacks import APGDT
from keras_drelu.attacks import BPDA
from keras_drelu.attacks import FABT
from keras_drelu.attacks import FGSM
from keras_drelu.attacks import PGD
from keras_drelu.attacks import CarliniWagnerL2
from keras_drelu.attacks import Square
from keras_drelu.attacks import Transfer
from keras_drelu.evaluation import SUITES
from keras_drelu.evaluation import evaluate_robustness

QUICK = {
    "PGD": {"steps": 5},
    "APGD-CE": {"steps": 5},
    "APGD-DLR": {"steps": 5},
    "APGD-T": {"steps": 5, "n_target_classes": 2},
    "FAB-T": {"steps": 5, "n_target_classes": 2},
    "CW-L2": {"max_iterations": 10, "binary_search_steps": 2},
    "Square": {"n_queries": 50},
}


@pytest.fixture(scope="module")
def mlp():
    model, x, y = paper_mlp()
    return model, x[:40], y[:40]


@pytest.mark.parametrize(
    "make",
    [
        lambda m: FGSM(m, eps=0.1),
        lambda m: PGD(m, eps=0.1, steps=5),
        lambda m: APGD(m, eps=0.1, loss="dlr", steps=5),
        lambda m: APGDT(m, eps=1.0, norm="l2", steps=5, n_target_classes=2),
        lambda m: FABT(m, eps=0.1, steps=5, n_target_classes=2),
        lambda m: FABT(m, eps=1.0, norm="l2", steps=5, n_target_classes=2),
        lambda m: CarliniWagnerL2(m, eps=1.0, max_iterations=10),
        lambda m: Square(m, eps=0.1, n_queries=30),
        lambda m: Square(m, eps=1.0, norm="l2", n_queries=30),
        lambda m: BPDA(APGD(m, eps=0.1, steps=5)),
        lambda m: Transfer(APGD(m, eps=0.1, steps=5)),
    ],
)
def test_every_attack_runs_on_vector_inputs(mlp, make):
    model, x, y = mlp
    attack = make(model)
    x_adv = attack.generate(x, y)
    norm, eps = attack.threat_model
    delta = x_adv - x
    size = (
        np.abs(delta).max(axis=1) if norm == "linf"
        else np.linalg.norm(delta, axis=1)
    )
    assert x_adv.shape == x.shape and size.max() <= eps * (1 + 1e-5) + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


@pytest.mark.parametrize("suite", sorted(SUITES))
@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 1.5)])
def test_every_suite_runs_on_vector_inputs(mlp, suite, norm, eps):
    model, x, y = mlp
    report = evaluate_robustness(
        model, x, y, eps=eps, norm=norm, suite=suite, overrides=QUICK,
        verbose=False, checks_enabled=suite == "standard",
    )
    # The whole suite ran: nothing skipped for the input's shape or norm.
    names = [result.name for result in report.results]
    assert sorted(names) == sorted(SUITES[suite].attacks)
    assert not report.notes or all("threat model" in n for n in report.notes)
    assert report.clean_accuracy > 0.9
    assert report.worst_case_accuracy < report.clean_accuracy - 0.3
    assert report.x_adv.shape == x.shape


@pytest.fixture(scope="module")
def small(digits_relu, digits):
    x, y = digits
    return digits_relu, x[1400:1410].copy(), y[1400:1410].copy()


def test_labels_outside_the_models_classes_are_refused(small):
    model, x, y = small
    y[5] = 12
    with pytest.raises(ValueError, match=r"y\[5\]=12 \(1 label out of range"):
        evaluate_robustness(model, x, y, eps=0.1, verbose=False)
    y[5] = -1
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    with pytest.raises(ValueError, match=r"y\[5\]=-1"):
        evaluate_robustness(model, dataset, eps=0.1, verbose=False)


def test_non_finite_inputs_are_refused(small):
    model, x, y = small
    x[3, 2, 4, 0] = np.nan
    with pytest.raises(ValueError, match=r"x\[3, 2, 4, 0\]=nan \(1 non-finite"):
        evaluate_robustness(model, x, y, eps=0.1, verbose=False)
    x[3, 2, 4, 0] = np.inf
    x[7] = -np.inf
    with pytest.raises(ValueError, match=r"x\[3, 2, 4, 0\]=inf \(65 non-finite"):
        evaluate_robustness(model, x, y, eps=0.1, verbose=False)
