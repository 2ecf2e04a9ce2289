"""Training-time augmentation with common corruptions."""

import keras
import tensorflow as tf

from keras_drelu.arguments import check_number
from keras_drelu.arguments import check_seed
from keras_drelu.corruptions.registry import check_names
from keras_drelu.corruptions.registry import check_severities
from keras_drelu.corruptions.registry import get


@keras.saving.register_keras_serializable(package="keras_drelu")
class RandomCorruption(keras.layers.Layer):
    """Corrupts a random share of the images while training.

    Each training batch draws one corruption and one severity; each image
    of the batch is then corrupted with probability `probability` and left
    as is otherwise. One draw per batch keeps the cost at one corruption
    per batch, as Keras's `RandAugment` does. At inference the layer is the
    identity. It runs TensorFlow ops, so it works on the TensorFlow backend
    and inside `tf.data` pipelines.

    Example:

    >>> import numpy as np
    >>> layer = RandomCorruption(corruptions=["gaussian_noise", "fog"],
    ...                          severities=[3, 4, 5], probability=1.0, seed=0)
    >>> x = np.full((2, 8, 8, 3), 0.5, "float32")
    >>> bool(np.all(layer(x) == x)), bool(np.all(layer(x, training=True) == x))
    (True, False)

    Args:
        corruptions: Names from `keras_drelu.corruptions.CORRUPTIONS`, or
            `None` for all. Defaults to `None`.
        severities: Severities to draw from, ints from 1 to 5. Defaults to
            `(1, 2, 3, 4, 5)`.
        probability: Chance that an image of a training batch is corrupted.
            Defaults to `0.5`.
        seed: Int seed of the draws, or `None`. Defaults to `None`.
        **kwargs: Base layer keyword arguments, such as `name`.
    """

    def __init__(
        self,
        corruptions=None,
        severities=(1, 2, 3, 4, 5),
        probability=0.5,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.corruptions = check_names(corruptions)
        self.severities = check_severities(severities)
        self.probability = check_number(
            "probability", probability, low=0, high=1
        )
        self.seed = check_seed("seed", seed)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        draws = keras.random.randint(
            (4,), 0, 2**31 - 1, seed=self.seed_generator, dtype="int32"
        )
        pick_seed, corrupt_seed = draws[:2], draws[2:]
        choices = [(n, s) for n in self.corruptions for s in self.severities]
        index = tf.random.stateless_uniform(
            [], pick_seed, maxval=len(choices), dtype=tf.int32
        )
        branches = [
            (lambda n=n, s=s: get(n)(inputs, s, seed=corrupt_seed))
            for n, s in choices
        ]
        corrupted = tf.switch_case(index, branches)
        corrupted.set_shape(inputs.shape)
        chosen = (
            tf.random.stateless_uniform(
                tf.shape(inputs)[:1], tf.reverse(pick_seed, [0])
            )
            < self.probability
        )
        return tf.where(chosen[:, None, None, None], corrupted, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "corruptions": list(self.corruptions),
                "severities": list(self.severities),
                "probability": self.probability,
                "seed": self.seed,
            }
        )
        return config
