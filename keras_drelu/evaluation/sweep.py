"""Accuracy as a function of the radius `eps`."""

import dataclasses

import numpy as np

from keras_drelu.arguments import check_positive
from keras_drelu.evaluation.suites import build_attack


@dataclasses.dataclass
class EpsSweep:
    """Accuracy of one attack at several radii.

    Args:
        attack: Name of the attack.
        norm: Norm of the threat model.
        eps: The radii, ascending.
        accuracy: Accuracy at each radius (clean mistakes count as wrong).
    """

    attack: str
    norm: str
    eps: list
    accuracy: list

    def reaches_zero(self, threshold=0.05):
        """Whether the accuracy at the largest radius is at most `threshold`."""
        return bool(self.accuracy and self.accuracy[-1] <= threshold)

    def to_dict(self):
        """The sweep as plain Python values."""
        return dataclasses.asdict(self)

    def to_markdown(self):
        """A two-row Markdown table: eps and accuracy."""
        header = " | ".join(f"{e:g}" for e in self.eps)
        values = " | ".join(f"{100 * a:.1f}%" for a in self.accuracy)
        return "\n".join(
            [
                f"{self.attack} accuracy by {self.norm} eps:",
                "",
                f"| eps | {header} |",
                "| --- |" + " ---: |" * len(self.eps),
                f"| accuracy | {values} |",
            ]
        )


def eps_sweep(
    model,
    x,
    y,
    eps_values,
    *,
    attack="PGD",
    norm="linf",
    clip_values=(0.0, 1.0),
    outputs="auto",
    batch_size=256,
    overrides=None,
    seed=0,
):
    """Runs one attack at each radius of `eps_values`.

    A working attack drives the accuracy to about zero as `eps` grows; a
    curve that flattens above zero is a sign of gradient masking.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x, y = np.full((4, 4), 0.5, "float32"), np.array([0, 1, 2, 0])
    >>> sweep = eps_sweep(model, x, y, [0.1, 0.5], overrides={"PGD": {"steps": 3}})
    >>> sweep.eps
    [0.1, 0.5]

    Args:
        model: A Keras classifier.
        x: Inputs within `clip_values`.
        y: Integer labels.
        eps_values: Radii to try.
        attack: Attack name, as in `keras_drelu.evaluation.ATTACKS` (or
            `"BPDA(PGD)"`...). Defaults to `"PGD"`.
        norm: `"linf"` or `"l2"`. Defaults to `"linf"`.
        clip_values: `(low, high)` input range. Defaults to `(0.0, 1.0)`.
        outputs: `"auto"`, `"logits"` or `"probabilities"`. Defaults to
            `"auto"`.
        batch_size: Inputs attacked at once. Defaults to `256`.
        overrides: Per-attack arguments, as in `evaluate_robustness`.
            Defaults to `None`.
        seed: Seed of the attack. Defaults to `0`.

    Returns:
        An `EpsSweep`.
    """
    eps_values = sorted(check_positive("eps_values", e) for e in eps_values)
    if not eps_values:
        raise ValueError(
            f"Argument `eps_values` should not be empty. Received: {eps_values!r}"
        )
    y = np.asarray(y)
    accuracy = []
    name = None
    surrogates = {}  # One BPDA/transfer surrogate for every radius.
    for eps in eps_values:
        instance = build_attack(
            attack,
            model,
            dict(
                eps=eps,
                norm=norm,
                clip_values=clip_values,
                outputs=outputs,
                batch_size=batch_size,
                seed=seed,
            ),
            overrides=overrides,
            surrogates=surrogates,
        )
        name = instance.name
        x_adv = instance.generate(x, y)
        predictions = np.argmax(
            model.predict(x_adv, batch_size=batch_size, verbose=0), axis=1
        )
        accuracy.append(float(np.mean(predictions == y)))
    return EpsSweep(attack=name, norm=norm, eps=eps_values, accuracy=accuracy)
