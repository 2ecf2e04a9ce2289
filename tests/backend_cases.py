"""The attacks that tests/test_backends.py runs on every backend.

Imported by the test and by the fresh interpreters it starts, so that each
backend runs the same attacks with the same settings.
"""

import numpy as np


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


def accuracies(cases, x, y, names=None):
    """Name -> accuracy of its model on its attack's examples."""
    import keras

    found = {}
    for name, (attack, judge) in cases.items():
        if names is not None and name not in names:
            continue
        x_adv = attack.generate(x, y)
        logits = keras.ops.convert_to_numpy(judge(x_adv, training=False))
        found[name] = float(np.mean(np.argmax(logits, axis=1) == y))
    return found


def analyses(model, capped, x, y):
    """Name -> numbers of `keras_drelu.analysis` on a few digits `x`."""
    from keras_drelu.analysis import perturbation_growth
    from keras_drelu.analysis import sensitivity_map
    from keras_drelu.analysis import zero_gradient_distance

    distances = zero_gradient_distance(
        capped, x, y, step_size=0.02, max_steps=5
    )
    growth = perturbation_growth(model, x, np.clip(x + 0.05, 0.0, 1.0))
    return {
        "zero-gradient found": float(distances.found_share),
        "zero-gradient steps": distances.steps.tolist(),
        "zero-gradient distances": np.nan_to_num(distances.distances, nan=-1.0).tolist(),
        "sensitivity sums": sensitivity_map(model, x[:4], y[:4]).sums.tolist(),
        "growth linf": growth.linf.tolist(),
        "growth l2": growth.l2.tolist(),
    }
