"""How far gradient ascent travels before the input gradient vanishes."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from keras_drelu.arguments import check_clip_values
from keras_drelu.arguments import check_inputs_and_labels
from keras_drelu.arguments import check_non_negative
from keras_drelu.arguments import check_positive
from keras_drelu.attacks.pgd import _check_norm
from keras_drelu.attacks.pgd import ascent_direction
from keras_drelu.attacks.pgd import project
from keras_drelu.outputs import check_logits
from keras_drelu.outputs import logits_model


@dataclasses.dataclass(frozen=True)
class ZeroGradientDistance:
    """Where projected gradient ascent met a zero input gradient.

    Attributes:
        mean_distance: Mean Euclidean distance from the clean input to the
            first point with a zero gradient, over the examples where one
            was found; `nan` if none was.
        found_share: Share of examples where a zero gradient was found
            within the step budget.
        distances: Per-example distance, `nan` where none was found.
        steps: Per-example number of ascent steps taken before the gradient
            was zero (`0`: already zero at the clean input), `-1` where none
            was found.
    """

    mean_distance: float
    found_share: float
    distances: np.ndarray
    steps: np.ndarray


def zero_gradient_distance(
    model,
    x,
    y,
    *,
    step_size,
    max_steps,
    eps=None,
    norm="linf",
    clip_values=(0.0, 1.0),
    atol=0.0,
    batch_size=256,
):
    """Runs PGD on the cross-entropy until each input gradient is zero.

    The zero-gradient experiment of Sooksatra, Hamerly & Rivas (2023,
    section 6): instead of stopping at the first adversarial example, ascent
    steps continue, from the clean input, until `max |dL/dx| <= atol` for an
    example (every path to the loss passes a dead or saturated unit), or
    until `max_steps` steps have been taken. A gradient attack cannot move
    past such a point. A short distance means the model stalls gradient
    attacks close to its inputs; that is gradient masking as much as
    robustness, so read it beside gradient-free attacks.

    The loss is the cross-entropy of the model's logits (a final softmax is
    stripped with `logits_model`); computing it from probabilities would
    clip them and report spurious zero gradients.

    Example:

    >>> import numpy as np
    >>> from keras_drelu import SReLU
    >>> constant = keras.initializers.Constant
    >>> model = keras.Sequential([
    ...     keras.Input((1,)),
    ...     keras.layers.Dense(1, bias_initializer=constant(-0.5),
    ...                        kernel_initializer="ones"),
    ...     SReLU(0.05),
    ...     keras.layers.Dense(2, kernel_initializer=constant([[1.0, -1.0]])),
    ... ])
    >>> result = zero_gradient_distance(
    ...     model, np.array([[0.2], [0.525]]), np.array([0, 0]),
    ...     step_size=0.02, max_steps=5)
    >>> result.found_share, result.steps.tolist()
    (1.0, [0, 2])

    Args:
        model: A built Sequential or functional classifier, ending in logits
            or in a softmax.
        x: Batch of clean inputs.
        y: Integer class labels, one per input.
        step_size: Length of each ascent step in `norm`.
        max_steps: Most ascent steps per example.
        eps: Radius of the `norm` ball the ascent is projected onto.
            Defaults to `None`, no ball: only `clip_values` bound the search,
            as in the paper.
        norm: `"linf"` (signed-gradient steps) or `"l2"`. Defaults to
            `"linf"`.
        clip_values: `(low, high)` range of valid inputs. Defaults to
            `(0.0, 1.0)`.
        atol: A gradient counts as zero when its largest absolute entry is
            at most `atol`. Defaults to `0.0`, exactly zero.
        batch_size: Number of examples attacked at once. Defaults to `256`.

    Returns:
        A `ZeroGradientDistance` record.
    """
    x, y = check_inputs_and_labels(x, y)
    step_size = check_positive("step_size", step_size)
    max_steps = check_non_negative("max_steps", max_steps, integer=True)
    eps = check_positive("eps", eps, allow_none=True)
    _check_norm(norm)
    low, high = check_clip_values(clip_values)
    atol = check_non_negative("atol", atol)
    batch_size = check_positive("batch_size", batch_size, integer=True)
    logits = logits_model(model)
    check_logits(logits(x[:batch_size], training=False), model.name)

    @tf.function
    def gradient_is_zero(x_adv, labels):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            loss = tf.reduce_sum(
                keras.losses.sparse_categorical_crossentropy(
                    labels, logits(x_adv, training=False), from_logits=True
                )
            )
        grad = tape.gradient(
            loss, x_adv, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        axes = tf.range(1, tf.rank(grad))
        return grad, tf.reduce_max(tf.abs(grad), axis=axes) <= atol

    steps = np.full(len(x), -1)
    distances = np.full(len(x), np.nan)
    for start in range(0, len(x), batch_size):
        clean = tf.constant(x[start : start + batch_size])
        labels = tf.constant(y[start : start + batch_size])
        x_adv = clean
        found = np.zeros(len(clean), dtype=bool)
        for step in range(max_steps + 1):
            grad, zero = gradient_is_zero(x_adv, labels)
            newly = zero.numpy() & ~found
            offsets = np.reshape((x_adv - clean).numpy(), (len(clean), -1))
            distances[start : start + len(clean)][newly] = np.linalg.norm(
                offsets[newly], axis=1
            )
            steps[start : start + len(clean)][newly] = step
            found |= newly
            if found.all() or step == max_steps:
                break
            moved = x_adv + step_size * ascent_direction(grad, norm)
            if eps is not None:
                moved = clean + project(moved - clean, eps, norm)
            moved = tf.clip_by_value(moved, low, high)
            # An example whose gradient vanished stays where it was found.
            keep = tf.reshape(
                tf.constant(found), [-1] + [1] * (len(x.shape) - 1)
            )
            x_adv = tf.where(keep, x_adv, moved)
    share = float(np.mean(steps >= 0))
    return ZeroGradientDistance(
        mean_distance=float(np.nanmean(distances)) if share else float("nan"),
        found_share=share,
        distances=distances,
        steps=steps,
    )
