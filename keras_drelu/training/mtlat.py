"""M-TLAT: Mixup plus targeted labeling adversarial training."""

import keras

from keras_drelu.arguments import check_number
from keras_drelu.arguments import check_positive
from keras_drelu.arguments import check_seed
from keras_drelu.attacks.pgd import projected_gradient_descent
from keras_drelu.training.callbacks import task_loss_metric
from keras_drelu.training.robust_training import RobustTraining


@keras.saving.register_keras_serializable(package="keras_drelu")
class MTLAT(RobustTraining):
    """Trains a classifier on targeted adversarial examples of Mixup images.

    Formula:
    ```python
    lam ~ Beta(alpha, alpha);  x_mix = lam * x + (1 - lam) * x[perm]
    y_mix = lam * y + (1 - lam) * y[perm]
    t ~ U{classes != argmax(y_mix)}
    x_adv = argmin_{||x' - x_mix|| <= eps} CE(f(x'), t)
    y_adv = (1 - w) * y_mix + w * onehot(t)
    loss = CE(f(x_adv), y_adv)
    ```
    Each batch is mixed by Keras' `keras.layers.MixUp` (one `lam` per
    image), then pushed toward a random target class by `steps` of
    projected gradient descent on the target's cross-entropy (classifier in
    inference mode; one step is the targeted FGSM of the paper), and the
    target is given weight `w` in the soft label, so that the label says
    how far the image was moved toward the target: Targeted Labeling
    Adversarial Training (Laugros, Caplier and Ospici, "Addressing Neural
    Network Robustness with Mixup and Targeted Labeling Adversarial
    Training", 2020), meant for robustness to common corruptions as well as
    to attacks. The outer step is Keras' own `train_step` on the soft labels
    with the compiled loss (categorical cross-entropy by default) plus the
    layers' regularization losses; integer labels, in training and in
    validation, are one-hot encoded first. On a classifier with capped
    ReLUs the targeted steps follow the straight-through gradient by
    default (`inner_gradient="bpda"`), the update the exact one.

    Example:

    >>> import numpy as np
    >>> classifier = keras.Sequential([
    ...     keras.Input((4, 4, 1)), keras.layers.Flatten(),
    ...     keras.layers.Dense(3, activation="softmax"),
    ... ])
    >>> trainer = MTLAT(classifier, eps=0.1, seed=0)
    >>> trainer.steps, trainer.target_weight
    (1, 0.1)
    >>> trainer.compile(optimizer="adam", metrics=["accuracy"])
    >>> x = np.random.default_rng(0).uniform(size=(8, 4, 4, 1))
    >>> history = trainer.fit(x.astype("float32"), np.arange(8) % 3,
    ...                       epochs=1, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'loss']

    Args:
        classifier: The Keras model to train, mapping images in `[0, 1]`
            (batches of rank 4, as `MixUp` takes) to class probabilities
            (or logits, with `from_logits=True`).
        eps: Radius of the targeted perturbation, such as `8/255` (CIFAR).
        alpha: Parameter of the Beta distribution of the Mixup weights, as
            in `keras.layers.MixUp`. Defaults to `0.2`.
        target_weight: Weight `w` of the target class in the label of the
            perturbed image, in `[0, 1]`. Defaults to `None`, `eps` (the
            paper ties the weight to the perturbation size of images in
            `[0, 1]`).
        step_size: Length of each attack step. Defaults to `None`,
            `2.5 * eps / steps`, a full `eps` step for `steps=1`.
        steps: Number of targeted steps. Defaults to `1`.
        norm: `"linf"` or `"l2"`. Defaults to `"linf"`.
        from_logits: Whether `classifier` outputs logits. Defaults to
            `False`.
        seed: Optional int seed of the Mixup weights and pairings and of
            the target classes. Defaults to `None`.
        inner_gradient: `"bpda"` or `"exact"`: the gradient the targeted
            steps follow through capped ReLUs (see `RobustTraining`).
            Defaults to `None`, `"bpda"` for a classifier holding caps,
            else `"exact"`.
        eps_ramp_steps: Optimizer steps over which the radius grows to
            `eps` (see `RobustTraining`). Defaults to `0`, no ramp.
        **kwargs: Base `keras.Model` keyword arguments, such as `name`.
    """

    def __init__(
        self, classifier, eps, alpha=0.2, target_weight=None, step_size=None,
        steps=1, norm="linf", from_logits=False, seed=None,
        inner_gradient=None, eps_ramp_steps=0, **kwargs,
    ):
        super().__init__(
            classifier, eps, step_size, steps, norm, from_logits,
            inner_gradient, eps_ramp_steps, **kwargs,
        )
        self.alpha = check_positive("alpha", alpha)
        if target_weight is None:
            target_weight = min(eps, 1.0)
        self.target_weight = check_number(
            "target_weight", target_weight, low=0, high=1
        )
        self.seed = check_seed("seed", seed)
        self.mixup = keras.layers.MixUp(alpha=self.alpha, seed=seed)
        self.target_seed = keras.random.SeedGenerator(
            None if seed is None else seed + 1
        )

    def num_classes(self, x):
        """The number of classes the classifier gives for inputs like `x`."""
        return int(self.classifier.compute_output_shape(tuple(x.shape))[-1])

    def soft_labels(self, y, num_classes):
        """Integer labels one-hot encoded; probability vectors unchanged."""
        y = keras.ops.convert_to_tensor(y)
        if "int" in keras.backend.standardize_dtype(y.dtype):
            y = keras.ops.one_hot(keras.ops.reshape(y, (-1,)), num_classes)
        return keras.ops.cast(y, "float32")

    def mix(self, x, y):
        """Mixup of batch `x` and its labels `y`, with soft labels."""
        labels = self.soft_labels(y, self.num_classes(x))
        mixed = self.mixup({"images": x, "labels": labels}, training=True)
        return mixed["images"], mixed["labels"]

    def random_targets(self, y_soft):
        """A uniform class other than each soft label's most likely one."""
        classes = y_soft.shape[-1]
        shift = keras.random.randint(
            keras.ops.shape(y_soft)[:1], 1, classes, seed=self.target_seed,
            dtype="int32",
        )
        likely = keras.ops.cast(keras.ops.argmax(y_soft, axis=-1), "int32")
        return (likely + shift) % classes

    def targeted_inputs(self, x, targets):
        """Inputs within `eps` of `x` lowering the targets' cross-entropy,
        crafted in `attack_scope()`."""

        def loss_fn(x_adv, targets):
            outputs = self.classifier(x_adv, training=False)
            # Ascent on the negative: descent toward the target class.
            return -keras.losses.sparse_categorical_crossentropy(
                targets,
                keras.ops.cast(outputs, "float32"),
                from_logits=self.from_logits,
            )

        eps, step_size = self.radius()
        with self.attack_scope():
            return projected_gradient_descent(
                loss_fn, x, targets, eps=eps, step_size=step_size,
                steps=self.steps, norm=self.norm, random_init=False,
                seed=self.attack_seed,
            )

    def perturbed_batch(self, x, y):
        """The M-TLAT images and soft labels of batch `x` with labels `y`."""
        x_mix, y_mix = self.mix(x, y)
        targets = self.random_targets(y_mix)
        x_adv = self.targeted_inputs(x_mix, targets)
        y_adv = (
            (1.0 - self.target_weight) * y_mix
            + self.target_weight * keras.ops.one_hot(targets, y_mix.shape[-1])
        )
        return x_adv, y_adv

    def task_loss_metric(self):
        """The `task_loss` metric on soft labels (`task_loss_metric`)."""
        return task_loss_metric(self.from_logits, soft_labels=True)

    def default_loss(self):
        """Cross-entropy on the soft labels of the mixed batch."""
        return keras.losses.CategoricalCrossentropy(
            from_logits=self.from_logits
        )

    def training_batch(self, x, y, sample_weight=None):
        """The M-TLAT images and soft labels of the batch."""
        x_adv, y_adv = self.perturbed_batch(x, y)
        return keras.utils.pack_x_y_sample_weight(x_adv, y_adv, sample_weight)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        """Keras' loss, on one-hot labels where the batch has integers
        (validation data)."""
        return super().compute_loss(
            x=x, y=self.soft_labels(y, y_pred.shape[-1]), y_pred=y_pred,
            sample_weight=sample_weight, training=training,
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(
            x, self.soft_labels(y, y_pred.shape[-1]), y_pred, sample_weight
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            alpha=self.alpha, target_weight=self.target_weight, seed=self.seed
        )
        return config
