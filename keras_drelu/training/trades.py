"""TRADES: the natural loss plus a KL penalty on adversarial inputs."""

import keras
import tensorflow as tf

from keras_drelu.arguments import check_non_negative
from keras_drelu.arguments import check_positive
from keras_drelu.attacks.pgd import projected_gradient_descent
from keras_drelu.training.robust_training import RobustTraining
from keras_drelu.training.robust_training import probabilities


def _global_loss(loss):
    # Under `tf.distribute`, losses are divided by the number of replicas so
    # that summed gradients average; the reported loss undoes it, as Keras'
    # own `train_step` does.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss * tf.cast(replicas, loss.dtype)


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
    >>> classifier = keras.Sequential([
    ...     keras.Input((4,)), keras.layers.Dense(3, activation="softmax")
    ... ])
    >>> trainer = TRADES(classifier, beta=6.0, eps=0.1, steps=3)
    >>> trainer.compile(optimizer="adam", metrics=["accuracy"])
    >>> x = np.random.default_rng(0).uniform(size=(8, 4)).astype("float32")
    >>> history = trainer.fit(x, np.arange(8) % 3, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'loss']

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
        steps = check_positive("steps", steps, integer=True)
        eps = check_positive("eps", eps)
        if step_size is None:
            step_size = 2.5 * eps / steps
        super().__init__(
            classifier, eps=eps, step_size=step_size, steps=steps, norm=norm,
            from_logits=from_logits, inner_gradient=inner_gradient,
            eps_ramp_steps=eps_ramp_steps, **kwargs,
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
                steps=self.steps, norm=self.norm,
            )

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        # Outside the tape: the attack's own gradients need not be recorded.
        x_adv = self.adversarial_inputs(x)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                training=True,
            )
            adversarial = probabilities(
                self(x_adv, training=True), self.from_logits
            )
            loss += self.beta * self.divergence(
                probabilities(y_pred, self.from_logits),
                adversarial,
                sample_weight=sample_weight,
            )
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(
                    _global_loss(loss), sample_weight=tf.shape(x)[0]
                )
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self):
        config = super().get_config()
        config["beta"] = self.beta
        return config
