"""What an evaluation is given: its settings, its examples, the model's outputs.

The first steps of `evaluate_robustness`: `check_settings` validates the
threat model and the attacks' shared arguments, `evaluation_inputs` turns
numpy arrays or a `tf.data.Dataset` into checked arrays, and
`detect_outputs` decides whether the model outputs logits or probabilities.
"""

import dataclasses
import sys

import numpy as np

from keras_drelu.arguments import ArgumentTypeError
from keras_drelu.arguments import check_choice
from keras_drelu.arguments import check_clip_values
from keras_drelu.arguments import check_inputs_and_labels
from keras_drelu.arguments import check_labels
from keras_drelu.arguments import check_positive
from keras_drelu.arguments import check_seed
from keras_drelu.arguments import check_within
from keras_drelu.attacks.base import NORMS
from keras_drelu.attacks.base import OUTPUTS
from keras_drelu.outputs import outputs_probabilities


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
    """The threat model and the arguments every attack of a suite shares.

    Args:
        eps: Radius of the threat model.
        norm: `"linf"` or `"l2"`.
        clip_values: `(low, high)` input range.
        outputs: `"auto"`, `"logits"` or `"probabilities"`.
        batch_size: Inputs attacked at once.
        seed: Seed of the attacks' randomness, or `None`.
    """

    eps: float
    norm: str
    clip_values: tuple
    outputs: str
    batch_size: int
    seed: int

    @property
    def threat_model(self):
        """`(norm, eps)`, as `Attack.threat_model`."""
        return (self.norm, self.eps)

    def attack_arguments(self):
        """The settings as keyword arguments of an `Attack`."""
        return dataclasses.asdict(self)


def check_settings(
    eps, norm="linf", *, clip_values=(0.0, 1.0), outputs="auto",
    batch_size=256, seed=0,
):
    """Validates the settings shared by the attacks of an evaluation.

    Example:

    >>> check_settings(0.1).threat_model
    ('linf', 0.1)
    >>> check_settings(0.1, norm="l1")
    Traceback (most recent call last):
    ...
    ValueError: Argument `norm` should be one of ('linf', 'l2'). Received: norm='l1'

    Args:
        eps: Radius of the threat model.
        norm: `"linf"` or `"l2"`. Defaults to `"linf"`.
        clip_values: `(low, high)` input range. Defaults to `(0.0, 1.0)`.
        outputs: `"auto"`, `"logits"` or `"probabilities"`. Defaults to
            `"auto"`.
        batch_size: Inputs attacked at once. Defaults to `256`.
        seed: Seed of the attacks' randomness. Defaults to `0`.

    Returns:
        An `EvaluationSettings`.
    """
    return EvaluationSettings(
        eps=check_positive("eps", eps),
        norm=check_choice("norm", norm, NORMS),
        clip_values=check_clip_values(clip_values),
        outputs=check_choice("outputs", outputs, OUTPUTS),
        batch_size=check_positive("batch_size", batch_size, integer=True),
        seed=check_seed("seed", seed),
    )


def is_dataset(x):
    """Whether `x` is a `tf.data.Dataset`.

    Checked without importing TensorFlow: where it was never imported, `x`
    cannot be one.
    """
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(x, tf.data.Dataset)


def examples_from_dataset(dataset, n_examples=None):
    """The first `n_examples` `(image, label)` pairs of `dataset`, as numpy.

    `dataset` may be batched (labels of shape `(batch,)`) or not (scalar
    labels); an unbatched one is read in batches of 256.

    Example:

    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.from_tensor_slices(
    ...     (np.zeros((10, 2, 2, 1), "float32"), np.arange(10))).batch(4)
    >>> images, labels = examples_from_dataset(ds, 6)
    >>> images.shape, labels.tolist()
    ((6, 2, 2, 1), [0, 1, 2, 3, 4, 5])

    Args:
        dataset: A `tf.data.Dataset` of `(image, label)` pairs with integer
            labels.
        n_examples: How many examples to take; all of them if fewer.
            Defaults to `None`, the whole (finite) dataset.

    Returns:
        `(images, labels)` numpy arrays.
    """
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(
            "Argument `x` should be a dataset of `(image, label)` pairs. "
            f"Received: a dataset of {spec}"
        )
    label_rank = spec[1].shape.rank
    if label_rank not in (0, 1):
        raise ValueError(
            "The dataset's labels should be integer class labels, one per "
            "image (scalars, or vectors of a batch). Received: labels of "
            f"shape {spec[1].shape}"
        )
    import tensorflow as tf

    if n_examples is None and (
        dataset.cardinality() == tf.data.INFINITE_CARDINALITY
    ):
        raise ValueError(
            "Argument `n_examples` is needed for an infinite dataset (one "
            "that repeats). Received: n_examples=None"
        )
    if label_rank == 1:
        dataset = dataset.unbatch()
    if n_examples is not None:
        dataset = dataset.take(n_examples)
    images, labels = [], []
    for batch_images, batch_labels in dataset.batch(256):
        images.append(np.asarray(batch_images))
        labels.append(np.asarray(batch_labels))
    if not images:
        raise ValueError(
            "Argument `x` should not be an empty dataset. Received: "
            f"a dataset of {spec}"
        )
    return np.concatenate(images), np.concatenate(labels)


def evaluation_inputs(x, y=None, *, n_examples=None, clip_values=(0.0, 1.0)):
    """Checked inputs and labels of an evaluation, from arrays or a dataset.

    Example:

    >>> x = np.full((5, 3), 0.5, "float32")
    >>> x, y = evaluation_inputs(x, np.arange(5), n_examples=2)
    >>> x.shape, y.dtype
    ((2, 3), dtype('int64'))

    Args:
        x: Numpy inputs within `clip_values`, or a `tf.data.Dataset` of
            `(image, label)` pairs (batched or not).
        y: Integer labels for numpy `x`; `None` for a dataset. Defaults to
            `None`.
        n_examples: Evaluate only the first `n_examples` inputs (all if
            fewer). Defaults to `None`, all of them.
        clip_values: `(low, high)` input range. Defaults to `(0.0, 1.0)`.

    Returns:
        `(x, y)`: float32 inputs, finite and within `clip_values`, and int64
        labels.
    """
    n_examples = check_positive(
        "n_examples", n_examples, integer=True, allow_none=True
    )
    if is_dataset(x):
        if y is not None:
            raise ArgumentTypeError(
                "Argument `y` should be None when `x` is a dataset, which "
                f"holds the labels. Received: y of type {type(y).__name__}"
            )
        x, y = examples_from_dataset(x, n_examples)
    elif y is None:
        raise ValueError(
            "Argument `y` is needed with numpy inputs `x` (only a dataset "
            "holds its labels). Received: y=None"
        )
    elif n_examples is not None:
        x, y = x[:n_examples], y[:n_examples]
    x, y = check_inputs_and_labels(x, y)
    check_within(x, clip_values)
    return x, y.astype("int64")


def detect_outputs(model, x, settings, y=None):
    """Resolves `settings.outputs`, counts the classes and checks the labels.

    A final softmax, or rows of the model's outputs on the first batch that
    are non-negative and sum to one, mean probabilities
    (`keras_drelu.outputs.outputs_probabilities`).

    Example:

    >>> import keras
    >>> model = keras.Sequential(
    ...     [keras.Input((3,)), keras.layers.Dense(4, activation="softmax")])
    >>> settings, n_classes = detect_outputs(
    ...     model, np.zeros((2, 3), "float32"), check_settings(0.1))
    >>> settings.outputs, n_classes
    ('probabilities', 4)
    >>> detect_outputs(model, np.zeros((2, 3), "float32"),
    ...                check_settings(0.1), y=np.array([0, 4]))
    Traceback (most recent call last):
    ...
    ValueError: Argument `y` should hold class indices in [0, 4), the classes of a model with 4 outputs. Received: y[1]=4 (1 label out of range)

    Args:
        model: A Keras classifier.
        x: Its inputs (the first `settings.batch_size` are used).
        settings: An `EvaluationSettings`.
        y: Optional labels of `x`, checked to be classes of the model.
            Defaults to `None`.

    Returns:
        `(settings, n_classes)`, with `settings.outputs` `"logits"` or
        `"probabilities"`.
    """
    sample = model(x[: settings.batch_size], training=False)
    n_classes = int(sample.shape[-1])
    if y is not None:
        check_labels(y, n_classes)
    if settings.outputs == "auto":
        probabilities = outputs_probabilities(model, sample)
        settings = dataclasses.replace(
            settings, outputs="probabilities" if probabilities else "logits"
        )
    return settings, n_classes
