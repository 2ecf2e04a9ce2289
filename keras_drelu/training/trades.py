"""TRADES: the natural loss plus a KL penalty on adversarial inputs."""

import typing

import keras

from keras_drelu.arguments import check_non_negative
from keras_drelu.attacks.pgd import projected_gradient_descent
from keras_drelu.training.robust_training import RobustTraining
from keras_drelu.training.robust_training import probabilities


class TRADESTargets(typing.NamedTuple):
    """What a TRADES training batch carries besides its clean inputs.

    Keras' `train_step` hands the batch's targets to `compute_loss` and
    `compute_metrics` on every backend, inside the function it
    differentiates: the adversarial inputs travel there with the labels.
    """

    labels: typing.Any
    adversarial: typing.Any


@keras.saving.register_keras_serializable(package="keras_drelu")
class TRADES(RobustTraining):
    """TRADES adversarial training with trade-off `beta`.

    Formula:
    ```python
    loss = CE(f(x), y) + beta * max_{||x' - x|| <= eps} KL(f(x) || f(x'))
    ```
    where `f` gives class probabilities. The inner maximum is approximated
    by `steps` of projected gradient ascent on the KL divergence from a
    random start in the `eps`-ball, with the classifier in inference mode;
    the outer loss is the compiled loss on the clean batch (plus the
    layers' regularization losses, such as the D-ReLU cap penalty) plus
    `beta` times the mean KL divergence (Zhang et al., "Theoretically
    Principled Trade-off between Robustness and Accuracy", 2019). With
    `beta=0` it is natural training. The D-ReLU paper uses `beta` 1 and 6.
    On a classifier with capped ReLUs the inner maximisation follows the
    straight-through gradient by default (`inner_gradient="bpda"`), the
    outer step the exact one.

    Example:

    >>> import numpy as np
    >>> logits = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> trainer = TRADES(logits, beta=6.0, eps=0.1, steps=3, from_logits=True)
    >>> trainer.compile()  # cross-entropy on the logits, Adam
    >>> inputs = np.random.default_rng(1).uniform(size=(16, 4))
    >>> labels = np.arange(16) % 3
    >>> losses = trainer.fit(inputs, labels, epochs=2, verbose=0).history
    >>> len(losses["loss"])  # cross-entropy + 6 KL(clean || adversarial)
    2

    Args:
        classifier: The Keras model to train, mapping inputs in `[0, 1]` to
            class probabilities (or logits, with `from_logits=True`).
        beta: Non-negative weight of the robustness term. Defaults to `6.0`.
        eps: Radius of the threat model.
        step_size: Length of each attack step. Defaults to `None`,
            `2.5 * eps / steps`.
        steps: Number of attack steps. Defaults to `10`.
        norm: `"linf"` or `"l2"`. Defaults to `"linf"`.
        from_logits: Whether `classifier` outputs logits. Defaults to
            `False`.
        inner_gradient: `"bpda"` or `"exact"`: the gradient the inner
            maximisation follows through capped ReLUs (see
            `RobustTraining`). Defaults to `None`, `"bpda"` for a
            classifier holding caps, else `"exact"`.
        eps_ramp_steps: Optimizer steps over which the radius grows to
            `eps` (see `RobustTraining`). Defaults to `0`, no ramp.
        **kwargs: Base `keras.Model` keyword arguments, such as `name`.
    """

    def __init__(
        self, classifier, beta=6.0, *, eps, step_size=None, steps=10,
        norm="linf", from_logits=False, inner_gradient=None, eps_ramp_steps=0, **kwargs,
    ):
        super().__init__(
            classifier, eps, step_size, steps, norm, from_logits,
            inner_gradient, eps_ramp_steps, **kwargs,
        )
        self.beta = check_non_negative("beta", beta)
        self.divergence = keras.losses.KLDivergence(name="trades_kl")

    def adversarial_inputs(self, x):
        """The inputs within `eps` of `x` maximising `KL(f(x) || f(x'))`,
        crafted in `attack_scope()`."""

        def loss_fn(x_adv, clean):
            adversarial = probabilities(
                self.classifier(x_adv, training=False), self.from_logits
            )
            return keras.losses.kl_divergence(clean, adversarial)

        eps, step_size = self.radius()
        with self.attack_scope():
            clean = probabilities(
                self.classifier(x, training=False), self.from_logits
            )
            return projected_gradient_descent(
                loss_fn, x, clean, eps=eps, step_size=step_size,
                steps=self.steps, norm=self.norm, seed=self.attack_seed,
            )

    def training_batch(self, x, y, sample_weight=None):
        """The clean batch, its labels carrying its adversarial inputs."""
        return keras.utils.pack_x_y_sample_weight(
            x, TRADESTargets(y, self.adversarial_inputs(x)), sample_weight
        )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        """Keras' loss of the batch, plus `beta` times the KL divergence
        from its outputs to those of its adversarial inputs in training."""
        if not isinstance(y, TRADESTargets):
            return super().compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                training=training,
            )
        loss = super().compute_loss(
            x=x, y=y.labels, y_pred=y_pred, sample_weight=sample_weight,
            training=training,
        )
        adversarial = probabilities(
            self(y.adversarial, training=training), self.from_logits
        )
        return loss + self.beta * self.divergence(
            probabilities(y_pred, self.from_logits),
            adversarial,
            sample_weight=sample_weight,
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y, TRADESTargets):
            y = y.labels
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def get_config(self):
        config = super().get_config()
        config["beta"] = self.beta
        return config
