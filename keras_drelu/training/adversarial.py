"""PGD adversarial training (Madry et al.) and its fast FGSM variant."""

import keras

from keras_drelu.arguments import check_positive
from keras_drelu.attacks.pgd import projected_gradient_descent
from keras_drelu.training.robust_training import RobustTraining


@keras.saving.register_keras_serializable(package="keras_drelu")
class AdversarialTraining(RobustTraining):
    """Trains a classifier on PGD adversarial examples of each batch.

    Formula:
    ```python
    min_theta  E[ max_{||x' - x|| <= eps}  CE(f_theta(x'), y) ]
    ```
    The inner maximum is approximated by `steps` of projected gradient
    ascent on the cross-entropy from a random start in the `eps`-ball,
    with the classifier in inference mode (Madry et al., "Towards Deep
    Learning Models Resistant to Adversarial Attacks", 2018). The outer
    step is Keras' own `train_step` on the adversarial batch (on TensorFlow
    or JAX), so the compiled loss (plus the layers' regularization losses,
    such as the D-ReLU cap penalty), metrics, callbacks, `tf.distribute`
    and mixed precision behave as for any model. Training metrics are therefore
    measured on the adversarial batch; validation metrics on clean data.

    On a classifier with capped ReLUs the attack follows the
    straight-through gradient by default (`inner_gradient="bpda"`): the
    exact one is zero wherever a cap clips, which would leave the training
    examples weak; the update follows the exact gradient.

    The D-ReLU paper's schedule retrains a naturally trained model for 10
    epochs this way (see `keras_drelu.training.train(natural_epochs=...)`).

    Example:

    >>> import numpy as np
    >>> classifier = keras.Sequential([
    ...     keras.Input((4,)), keras.layers.Dense(3, activation="softmax")
    ... ])
    >>> trainer = AdversarialTraining(classifier, eps=0.1, steps=5)
    >>> trainer.step_size  # 2.5 * eps / steps
    0.05
    >>> trainer.compile(optimizer="adam", metrics=["accuracy"])
    >>> x = np.random.default_rng(0).uniform(size=(8, 4)).astype("float32")
    >>> history = trainer.fit(x, np.arange(8) % 3, epochs=1, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'loss']

    Args:
        classifier: The Keras model to train, mapping inputs in `[0, 1]` to
            class probabilities (or logits, with `from_logits=True`).
        eps: Radius of the threat model, such as `0.3` (MNIST) or `8/255`
            (CIFAR) for `"linf"`.
        step_size: Length of each attack step. Defaults to `None`,
            `2.5 * eps / steps` (Madry et al.).
        steps: Number of attack steps. Defaults to `10`.
        norm: `"linf"` or `"l2"`. Defaults to `"linf"`.
        from_logits: Whether `classifier` outputs logits. Defaults to
            `False`, as `keras.losses.SparseCategoricalCrossentropy`.
        inner_gradient: `"bpda"` or `"exact"`: the gradient the attack
            follows through capped ReLUs (see `RobustTraining`). Defaults
            to `None`, `"bpda"` for a classifier holding caps, else
            `"exact"`.
        eps_ramp_steps: Optimizer steps over which the radius grows to
            `eps` (see `RobustTraining`). Defaults to `0`, no ramp.
        **kwargs: Base `keras.Model` keyword arguments, such as `name`.
    """

    def __init__(
        self, classifier, eps, step_size=None, steps=10, norm="linf",
        from_logits=False, inner_gradient=None, eps_ramp_steps=0, **kwargs,
    ):
        super().__init__(
            classifier, eps, step_size, steps, norm, from_logits,
            inner_gradient, eps_ramp_steps, **kwargs,
        )

    def adversarial_inputs(self, x, y):
        """The PGD adversarial examples of batch `x` with labels `y`,
        crafted in `attack_scope()`."""

        def loss_fn(x_adv, y):
            outputs = self.classifier(x_adv, training=False)
            return keras.losses.sparse_categorical_crossentropy(
                y,
                keras.ops.cast(outputs, "float32"),
                from_logits=self.from_logits,
            )

        eps, step_size = self.radius()
        with self.attack_scope():
            return projected_gradient_descent(
                loss_fn, x, y, eps=eps, step_size=step_size,
                steps=self.steps, norm=self.norm, seed=self.attack_seed,
            )

    def training_batch(self, x, y, sample_weight=None):
        """The adversarial examples of the batch, with its labels."""
        return keras.utils.pack_x_y_sample_weight(
            self.adversarial_inputs(x, y), y, sample_weight
        )


@keras.saving.register_keras_serializable(package="keras_drelu")
class FastAdversarialTraining(AdversarialTraining):
    """Fast adversarial training: one FGSM step from a random start.

    Formula:
    ```python
    delta ~ U[-eps, eps];  delta <- clip(delta + alpha * sign(grad), -eps, eps)
    ```
    with `alpha = 1.25 * eps` by default, then a training step on
    `x + delta` (Wong, Rice and Kolter, "Fast is better than free:
    Revisiting adversarial training", 2020). The random start and the step
    of `1.25 * eps` are what make single-step training robust there; the
    authors still watch held-out PGD accuracy for "catastrophic
    overfitting", a sudden collapse of robustness during training.

    Example:

    >>> classifier = keras.Sequential([
    ...     keras.Input((4,)), keras.layers.Dense(3, activation="softmax")
    ... ])
    >>> trainer = FastAdversarialTraining(classifier, eps=0.1)
    >>> trainer.steps, trainer.step_size
    (1, 0.125)

    Args:
        classifier: The Keras model to train.
        eps: Radius of the threat model.
        step_size: Length of the step. Defaults to `None`, `1.25 * eps`.
        norm: `"linf"` or `"l2"`. Defaults to `"linf"`.
        from_logits: Whether `classifier` outputs logits. Defaults to
            `False`.
        inner_gradient: `"bpda"` or `"exact"`, as for
            `AdversarialTraining`. Defaults to `None`, `"bpda"` for a
            classifier holding caps, else `"exact"`.
        eps_ramp_steps: Optimizer steps over which the radius grows to
            `eps` (see `RobustTraining`). Defaults to `0`, no ramp.
        **kwargs: Base `keras.Model` keyword arguments, such as `name`.
    """

    def __init__(
        self, classifier, eps, step_size=None, norm="linf", from_logits=False,
        inner_gradient=None, eps_ramp_steps=0, **kwargs,
    ):
        eps = check_positive("eps", eps)
        super().__init__(
            classifier,
            eps=eps,
            step_size=1.25 * eps if step_size is None else step_size,
            steps=1,
            norm=norm,
            from_logits=from_logits,
            inner_gradient=inner_gradient,
            eps_ramp_steps=eps_ramp_steps,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        del config["steps"]
        return config
