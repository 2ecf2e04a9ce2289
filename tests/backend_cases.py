"""What tests/test_backends.py runs on every backend.

Imported by the test and by the fresh interpreters it starts, so that each
backend runs the same attacks, evaluation and analyses with the same
settings on the same images.
"""

import numpy as np


def digits_test():
    """The 200 test digits the backends are compared on: `(x, y)`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    return x[1400:1600], digits.target[1400:1600].astype("int64")


def attack_cases(model, capped):
    """Name -> `(attack, model it is judged on)` for the digits models."""
    from keras_drelu.attacks import APGD
    from keras_drelu.attacks import APGDT
    from keras_drelu.attacks import BPDA
    from keras_drelu.attacks import FABT
    from keras_drelu.attacks import FGSM
    from keras_drelu.attacks import PGD
    from keras_drelu.attacks import CarliniWagnerL2
    from keras_drelu.attacks import Square
    from keras_drelu.attacks import Transfer

    return {
        "FGSM": (FGSM(model, eps=0.1), model),
        "PGD": (PGD(model, eps=0.1, steps=10, seed=0), model),
        "APGD-CE": (APGD(model, eps=0.1, steps=10, seed=0), model),
        "APGD-DLR": (APGD(model, eps=0.1, loss="dlr", steps=10, seed=0), model),
        "APGD-T": (
            APGDT(model, eps=0.1, steps=10, n_target_classes=3, seed=0),
            model,
        ),
        "FAB-T": (FABT(model, eps=0.1, steps=10, n_target_classes=3), model),
        "Square": (Square(model, eps=0.1, n_queries=100, seed=0), model),
        "Square-L2": (
            Square(model, eps=1.0, norm="l2", n_queries=100, seed=0),
            model,
        ),
        "CW-L2": (
            CarliniWagnerL2(
                model, eps=1.0, max_iterations=30, binary_search_steps=2
            ),
            model,
        ),
        "BPDA(PGD)": (BPDA(PGD(capped, eps=0.2, steps=10, seed=0)), capped),
        "Transfer(APGD-CE)": (
            Transfer(APGD(capped, eps=0.2, steps=10, seed=0)),
            capped,
        ),
    }


def accuracies(cases, x, y):
    """Name -> accuracy of its model on its attack's examples."""
    import keras

    found = {}
    for name, (attack, judge) in cases.items():
        x_adv = attack.generate(x, y)
        logits = keras.ops.convert_to_numpy(judge(x_adv, training=False))
        found[name] = float(np.mean(np.argmax(logits, axis=1) == y))
    return found


def evaluation(capped, x, y, distribute=None):
    """`(summary without timings, x_adv)` of a small evaluation of `capped`."""
    from keras_drelu.attacks import APGD
    from keras_drelu.attacks import Square
    from keras_drelu.evaluation import evaluate_robustness

    suite = [
        APGD(capped, eps=0.2, steps=5, seed=0),
        Square(capped, eps=0.2, n_queries=30, seed=0),
    ]
    report = evaluate_robustness(
        capped, x[:60], y[:60], eps=0.2, suite=suite, batch_size=16,
        verbose=False, distribute=distribute,
    )
    summary = report.to_dict()
    summary.pop("timings")
    for row in summary["attacks"]:
        row.pop("seconds")
    return summary, np.asarray(report.x_adv)


def analyses(model, capped, x, y):
    """Name -> numbers of `keras_drelu.analysis` and `calibrate_caps`."""
    import keras

    from keras_drelu import DReLU
    from keras_drelu import calibrate_caps
    from keras_drelu.analysis import perturbation_growth
    from keras_drelu.analysis import sensitivity_map
    from keras_drelu.analysis import zero_gradient_distance

    distances = zero_gradient_distance(
        capped, x[:20], y[:20], step_size=0.02, max_steps=5
    )
    growth = perturbation_growth(
        model, x[:20], np.clip(x[:20] + 0.05, 0.0, 1.0)
    )
    caps = keras.Sequential(
        [keras.Input(x.shape[1:]), keras.layers.Flatten(), DReLU(name="cap")]
    )
    return {
        "zero-gradient steps": distances.steps.tolist(),
        "zero-gradient distances": np.nan_to_num(
            distances.distances, nan=-1.0
        ).tolist(),
        "sensitivity sums": sensitivity_map(model, x[:4], y[:4]).sums.tolist(),
        "growth linf": growth.linf.tolist(),
        "growth l2": growth.l2.tolist(),
        "calibrated caps": calibrate_caps(caps, x, quantile=0.5)["cap"]
        .ravel()
        .tolist(),
    }


def backend_numbers(model, capped):
    """What each backend reports, as JSON-ready values.

    `"examples"` is a digest of the evaluation's adversarial examples, to
    compare runs on one backend.
    """
    import hashlib

    x, y = digits_test()
    summary, examples = evaluation(capped, x, y)
    return {
        "accuracies": accuracies(attack_cases(model, capped), x, y),
        "report": summary,
        "examples": hashlib.sha256(examples.tobytes()).hexdigest(),
        "analysis": analyses(model, capped, x, y),
    }
