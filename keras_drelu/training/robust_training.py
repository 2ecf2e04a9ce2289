"""The base of the adversarial training recipes: a classifier's wrapper."""

import keras
import tensorflow as tf

from keras_drelu.arguments import check_bool
from keras_drelu.arguments import check_choice
from keras_drelu.arguments import check_positive
from keras_drelu.attacks.pgd import NORMS


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
        self.classifier = classifier
        self.eps = check_positive("eps", eps)
        self.step_size = check_positive("step_size", step_size)
        self.steps = check_positive("steps", steps, integer=True)
        self.norm = check_choice("norm", norm, NORMS)
        self.from_logits = check_bool("from_logits", from_logits)
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
