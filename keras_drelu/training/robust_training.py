"""The base of the adversarial training recipes: a classifier's wrapper."""

import keras

from keras_drelu.arguments import check_bool
from keras_drelu.arguments import check_choice
from keras_drelu.arguments import check_non_negative
from keras_drelu.arguments import check_positive
from keras_drelu.attacks.pgd import NORMS
from keras_drelu.layers.drelu import GRADIENT_MODES
from keras_drelu.layers.straight_through import straight_through
from keras_drelu.training.callbacks import task_loss_metric
from keras_drelu.training.caps import contains_caps
from keras_drelu.training.steps import backend_step

# The gradients an inner attack can follow through capped ReLUs: those of
# `DReLU(gradient_mode=...)`, `"exact"` or `"bpda"` (straight-through).
INNER_GRADIENTS = GRADIENT_MODES


def probabilities(outputs, from_logits):
    """Class probabilities of a classifier's outputs, in float32."""
    outputs = keras.ops.cast(outputs, "float32")
    return keras.ops.softmax(outputs) if from_logits else outputs


def default_inner_gradient(classifier):
    """The inner attack's gradient for `classifier` when none is given.

    `"bpda"` for a classifier holding capped ReLUs (`DReLU`, `SReLU`):
    their exact input gradient is zero wherever they clip, so an attack
    following it stalls and adversarial training would train on weak
    examples (gradient masking). `"exact"` otherwise, where both are the
    same.

    Example:

    >>> from keras_drelu import SReLU
    >>> default_inner_gradient(keras.Sequential([keras.Input((2,)), SReLU(1.0)]))
    'bpda'
    >>> default_inner_gradient(keras.Sequential([keras.Input((2,))]))
    'exact'
    """
    return "bpda" if contains_caps(classifier) else "exact"


class RobustTraining(backend_step(), keras.Model):
    """A `keras.Model` that trains `classifier` on perturbed inputs.

    Subclasses override `training_batch`, the batch a training step trains
    on, written in `keras.ops`; the step itself is Keras' own `train_step`
    on that batch, on TensorFlow and on JAX alike (`steps`: on JAX the
    batch is crafted with the weights, step counter and random states of
    the state the stateless step is given). Calling, evaluating and
    predicting go straight to `classifier`, so validation metrics are
    natural ones, and `classifier` itself is what one saves or exports
    after `fit`: the wrapper holds no weights of its own.

    The inner attack of a training step runs in `attack_scope()`: with
    `inner_gradient="bpda"` every capped ReLU passes its input gradient
    straight through (`keras_drelu.straight_through`), so the attack sees
    through the caps, while the update, outside the scope, follows the
    exact gradient of the same weights.

    With `eps_ramp_steps`, the radius (and the attack's step size with it)
    grows linearly from `eps / eps_ramp_steps` to `eps` over the first
    `eps_ramp_steps` optimizer steps, then stays at `eps`: the schedule
    that lets robust fine-tuning of a non-robust pretrained model keep what
    it learned (Ngnawe et al. 2025, "Epsilon-Scheduling"). It is read from
    the optimizer's step counter, so a run resumed from a backup picks it
    up where it stopped.

    Args:
        classifier: The Keras model to train, mapping images to class
            probabilities or logits.
        eps: Radius of the threat model.
        step_size: Length of each attack step. `None`: `2.5 * eps / steps`
            (Madry et al.).
        steps: Number of attack steps.
        norm: `"linf"` or `"l2"`.
        from_logits: Whether `classifier` outputs logits rather than
            probabilities.
        inner_gradient: The gradient the inner attack follows through
            capped ReLUs: `"bpda"` (straight-through, the plain ReLU's) or
            `"exact"`. Defaults to `None`, `default_inner_gradient`:
            `"bpda"` for a classifier holding caps, else `"exact"`.
        eps_ramp_steps: Optimizer steps over which the radius ramps up to
            `eps`. Defaults to `0`, no ramp.
        **kwargs: Base `keras.Model` keyword arguments, such as `name`.
    """

    def __init__(
        self, classifier, eps, step_size, steps, norm, from_logits,
        inner_gradient=None, eps_ramp_steps=0, **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(classifier, keras.Model):
            raise ValueError(
                "Argument `classifier` should be a `keras.Model`. Received: "
                f"classifier of type {type(classifier).__name__}"
            )
        self.classifier = classifier
        self.eps = check_positive("eps", eps)
        self.steps = check_positive("steps", steps, integer=True)
        if step_size is None:
            step_size = 2.5 * self.eps / self.steps
        self.step_size = check_positive("step_size", step_size)
        self.norm = check_choice("norm", norm, NORMS)
        self.from_logits = check_bool("from_logits", from_logits)
        if inner_gradient is None:
            inner_gradient = default_inner_gradient(classifier)
        self.inner_gradient = check_choice(
            "inner_gradient", inner_gradient, INNER_GRADIENTS
        )
        self.eps_ramp_steps = check_non_negative(
            "eps_ramp_steps", eps_ramp_steps, integer=True
        )
        # Built when the classifier is: `BackupAndRestore` loads weights
        # into built models only.
        self.built = classifier.built

    def build(self, input_shape):
        if not self.classifier.built:
            self.classifier.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return self.classifier(inputs, training=training)

    def training_batch(self, x, y, sample_weight=None):
        """The batch one training step trains on, for batch `x`, `y`.

        Called inside the compiled step, with the step's weights: a
        recipe crafts its perturbed inputs here in `keras.ops` (random
        starts seeded with `self.attack_seed`), and Keras' `train_step`
        trains on what it returns. This base returns the batch unchanged.

        Args:
            x: The batch of inputs.
            y: Their labels.
            sample_weight: Their weights, or `None`. Defaults to `None`.

        Returns:
            A tuple `(x, y, sample_weight)` for Keras' `train_step`.
        """
        return keras.utils.pack_x_y_sample_weight(x, y, sample_weight)

    def radius(self):
        """`(eps, step_size)` of the attack at the current training step.

        Both are `eps` and `step_size` once the ramp (`eps_ramp_steps`) is
        over, and that share of them during it.
        """
        if not self.eps_ramp_steps:
            return self.eps, self.step_size
        done = keras.ops.cast(self.optimizer.iterations + 1, "float32")
        share = keras.ops.minimum(1.0, done / self.eps_ramp_steps)
        return self.eps * share, self.step_size * share

    def attack_scope(self):
        """The scope of the inner attack: straight-through for `"bpda"`.

        Entered inside `train_step`, so inside the compiled function:
        capped ReLUs read it when they are traced.
        """
        return straight_through(self.inner_gradient == "bpda")

    def task_loss_metric(self):
        """The `task_loss` metric `train` compiles in: the trainer's
        cross-entropy without penalties (`callbacks.task_loss_metric`)."""
        return task_loss_metric(self.from_logits)

    def default_loss(self):
        """The loss `compile` uses when given none: cross-entropy on labels."""
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=self.from_logits
        )

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """`keras.Model.compile`, with the loss defaulting to the recipe's.

        Args:
            optimizer: As in `keras.Model.compile`. Defaults to `"adam"`.
            loss: As in `keras.Model.compile`. Defaults to `None`,
                `self.default_loss()`: `SparseCategoricalCrossentropy(
                from_logits=self.from_logits)` unless the recipe says
                otherwise.
            metrics: As in `keras.Model.compile`. Defaults to `None`.
            **kwargs: Other `keras.Model.compile` arguments.
        """
        super().compile(
            optimizer=optimizer,
            loss=self.default_loss() if loss is None else loss,
            metrics=metrics,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "classifier": keras.saving.serialize_keras_object(
                    self.classifier
                ),
                "eps": self.eps,
                "step_size": self.step_size,
                "steps": self.steps,
                "norm": self.norm,
                "from_logits": self.from_logits,
                "inner_gradient": self.inner_gradient,
                "eps_ramp_steps": self.eps_ramp_steps,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(
            config["classifier"]
        )
        return cls(**config)
