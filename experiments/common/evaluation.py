"""Attack budgets from the command line, and the experiments' evaluation calls."""

import numpy as np

from keras_drelu import max_values
from keras_drelu.evaluation import build_attack
from keras_drelu.evaluation import eps_sweep
from keras_drelu.evaluation import evaluate_robustness
from keras_drelu.evaluation.suites import BUDGETS
from keras_drelu.evaluation.suites import budget_overrides
from keras_drelu.training import train

BATCH_SIZE = 500


def overrides(args, fixed=None):
    """Per-attack arguments from the budgets in `args`, plus `fixed` ones.

    Example:

    >>> import argparse
    >>> overrides(argparse.Namespace(apgd_steps=5, square_queries=50),
    ...           fixed={"PGD": {"random_init": False}})["APGD-T"]
    {'steps': 5}

    Args:
        args: Parsed arguments; those named in
            `keras_drelu.evaluation.suites.BUDGETS` are read.
        fixed: Attack name -> arguments set whatever the command line.
            Defaults to `None`.

    Returns:
        The `overrides` of `evaluate_robustness`.
    """
    result = budget_overrides(**{
        key: getattr(args, key) for key in BUDGETS if hasattr(args, key)
    })
    for attack, arguments in (fixed or {}).items():
        result.setdefault(attack, {}).update(arguments)
    return result


def evaluate(model, x, y, args, *, eps, suite="adaptive", seed=None,
             fixed=None, model_name=None):
    """`evaluate_robustness` with the budgets of `args`, checks always on.

    Args:
        model: A classifier ending in logits, inputs in `[0, 1]`.
        x: Test images.
        y: Their labels.
        args: Parsed arguments holding the budgets (see `overrides`) and
            `seed`.
        eps: L-inf radius.
        suite: A suite name of `keras_drelu.evaluation.SUITES` (its
            schedule), or a tuple of attack names, each run on every
            correctly classified input as the papers' tables report them.
            Defaults to `"adaptive"`.
        seed: Seed of the attacks. Defaults to `None`: `args.seed`.
        fixed: Attack arguments beside the budgets (see `overrides`).
            Defaults to `None`.
        model_name: Name in the report. Defaults to `None`: the model's.

    Returns:
        A `RobustnessReport`.
    """
    seed = args.seed if seed is None else seed
    budgets = overrides(args, fixed)
    common = dict(eps=eps, norm="linf", clip_values=(0.0, 1.0),
                  outputs="logits", batch_size=BATCH_SIZE, seed=seed)
    schedule = {}
    if not isinstance(suite, str):
        suite = [build_attack(name, model, common, overrides=budgets)
                 for name in suite]
        schedule = dict(cascade=False)
    return evaluate_robustness(
        model, x, y, eps=eps, suite=suite, batch_size=BATCH_SIZE,
        outputs="logits", overrides=budgets, seed=seed, verbose=False,
        model_name=model_name, **schedule,
    )


def cap_summary(model):
    """Layer -> mean, min and max of its caps (`keras_drelu.max_values`)."""
    return {name: dict(mean=float(np.mean(caps)), min=float(np.min(caps)),
                       max=float(np.max(caps)))
            for name, caps in max_values(model).items()}


def train_model(model, splits, *, epochs, seed, **recipe):
    """Trains `model` on `splits.train`; returns the model and its result.

    Early stopping and plateau halving watch `splits.validation` where the
    splits have one, else the training loss.

    Args:
        model: A `keras.Model`, or a function building one (called after
            seeding, so that the initial weights follow `seed`).
        splits: A `DataSplits`.
        epochs: Epochs of the recipe.
        seed: Seed of the initial weights and the recipe's attacks.
        **recipe: `recipe` and its arguments, as `keras_drelu.training.train`
            takes them.

    Returns:
        `(model, result)`: the trained `keras.Model` and the
        `TrainingResult` of `keras_drelu.training.train`.
    """
    result = train(
        model, splits.train, splits.validation,
        epochs=epochs, seed=seed, verbose=0, **recipe,
    )
    return result.model, result


def train_and_evaluate(build, splits, x, y, args, radii):
    """Trains `build()` naturally, then evaluates it at each radius.

    Args:
        build: Function building the classifier.
        splits: A `DataSplits`; its validation split drives early stopping.
        x: Test images.
        y: Their labels.
        args: Parsed arguments: `epochs`, `seed` and the attack budgets.
        radii: Name -> L-inf radius, each evaluated under the adaptive
            suite.

    Returns:
        `(model, record)`: the trained model, and a dict of plain values:
        `epochs_trained`, `final_val_accuracy`, `caps` (`cap_summary`),
        `clean`, and per radius name `worst_case` and `reports`
        (`RobustnessReport.to_dict()`).
    """
    model, history = train_model(build, splits, epochs=args.epochs,
                                 seed=args.seed)
    reports = {name: evaluate(model, x, y, args, eps=eps)
               for name, eps in radii.items()}
    return model, dict(
        epochs_trained=len(history.epochs),
        final_val_accuracy=history.history["val_accuracy"][-1],
        caps=cap_summary(model),
        clean=next(iter(reports.values())).clean_accuracy,
        worst_case={name: r.worst_case_accuracy for name, r in reports.items()},
        reports={name: r.to_dict() for name, r in reports.items()},
    )


def eps_curves(model, x, y, args, attacks, radii):
    """Attack name -> accuracy at each radius (`eps_sweep`, budgets of `args`)."""
    return {attack: eps_sweep(model, x, y, radii, attack=attack,
                              seed=args.seed,
                              overrides=overrides(args)).accuracy
            for attack in attacks}
