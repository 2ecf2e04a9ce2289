"""The base of the adversarial training recipes: a classifier's wrapper."""

import math
import numbers

import keras
import tensorflow as tf

from keras_drelu.attacks.pgd import NORMS


def check_positive(name, value, integer=False):
    """Returns `value` if it is a positive finite number (int if asked)."""
    kinds = numbers.Integral if integer else numbers.Real
    if (
        isinstance(value, bool)
        or not isinstance(value, kinds)
        or not (value > 0 and math.isfinite(value))
    ):
        kind = "integer" if integer else "number"
        raise ValueError(
            f"Argument `{name}` should be a positive {kind}. "
            f"Received: {name}={value!r}"
        )
    return int(value) if integer else float(value)


def probabilities(outputs, from_logits):
    """Class probabilities of a classifier's outputs, in float32."""
    outputs = tf.cast(outputs, tf.float32)
    return tf.nn.softmax(outputs) if from_logits else outputs


class RobustTraining(keras.Model):
    """A `keras.Model` that trains `classifier` on perturbed inputs.

    Subclasses override `train_step`. Calling, evaluating and predicting go
    straight to `classifier`, so validation metrics are natural ones, and
    `classifier` itself is what one saves or exports after `fit`: the
    wrapper holds no weights of its own.

    Args:
        classifier: The Keras model to train, mapping images to class
            probabilities or logits.
        eps: Radius of the threat model.
        step_size: Length of each attack step.
        steps: Number of attack steps.
        norm: `"linf"` or `"l2"`.
        from_logits: Whether `classifier` outputs logits rather than
            probabilities.
        **kwargs: Base `keras.Model` keyword arguments, such as `name`.
    """

    def __init__(
        self, classifier, eps, step_size, steps, norm, from_logits, **kwargs
    ):
        super().__init__(**kwargs)
        if not isinstance(classifier, keras.Model):
            raise ValueError(
                "Argument `classifier` should be a `keras.Model`. Received: "
                f"classifier of type {type(classifier).__name__}"
            )
        if norm not in NORMS:
            raise ValueError(
                f"Argument `norm` should be one of {NORMS}. "
                f"Received: norm={norm!r}"
            )
        if not isinstance(from_logits, bool):
            raise ValueError(
                "Argument `from_logits` should be a bool. "
                f"Received: from_logits={from_logits!r}"
            )
        self.classifier = classifier
        self.eps = check_positive("eps", eps)
        self.step_size = check_positive("step_size", step_size)
        self.steps = check_positive("steps", steps, integer=True)
        self.norm = norm
        self.from_logits = from_logits
        # Built when the classifier is: `BackupAndRestore` loads weights
        # into built models only.
        self.built = classifier.built

    def build(self, input_shape):
        if not self.classifier.built:
            self.classifier.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return self.classifier(inputs, training=training)

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """`keras.Model.compile`, with the loss defaulting to cross-entropy.

        Args:
            optimizer: As in `keras.Model.compile`. Defaults to `"adam"`.
            loss: As in `keras.Model.compile`. Defaults to `None`,
                `SparseCategoricalCrossentropy(from_logits=self.from_logits)`.
            metrics: As in `keras.Model.compile`. Defaults to `None`.
            **kwargs: Other `keras.Model.compile` arguments.
        """
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=self.from_logits
            )
        super().compile(
            optimizer=optimizer, loss=loss, metrics=metrics, **kwargs
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
