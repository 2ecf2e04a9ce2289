"""How far gradient ascent travels before the input gradient vanishes."""

import dataclasses

import keras
import numpy as np
from keras import ops

from keras_drelu import backends
from keras_drelu.arguments import check_clip_values
from keras_drelu.arguments import check_inputs_and_labels
from keras_drelu.arguments import check_non_negative
from keras_drelu.arguments import check_positive
from keras_drelu.attacks.pgd import _check_norm
from keras_drelu.attacks.pgd import ascent_direction
from keras_drelu.attacks.pgd import expand_like
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

    axes = tuple(range(1, x.ndim))

    def search(clean, labels):
        """Per example, the step and distance of its first zero gradient."""

        def loss(x_adv):
            z = logits(x_adv, training=False)
            return ops.sum(
                keras.losses.sparse_categorical_crossentropy(
                    labels, z, from_logits=True
                )
            ), None

        def going(step, x_adv, found, steps, distances):
            return ops.logical_and(
                step <= max_steps, ops.any(ops.logical_not(found))
            )

        def ascend(step, x_adv, found, steps, distances):
            _, _, grad = backends.value_and_grad(loss, x_adv)
            zero = ops.max(ops.abs(grad), axis=axes) <= atol
            newly = ops.logical_and(zero, ops.logical_not(found))
            offsets = ops.reshape(x_adv - clean, (-1, int(np.prod(x.shape[1:]))))
            distance = ops.sqrt(ops.sum(ops.square(offsets), axis=1))
            distances = ops.where(newly, distance, distances)
            steps = ops.where(newly, step, steps)
            found = ops.logical_or(found, newly)
            moved = x_adv + step_size * ascent_direction(grad, norm)
            if eps is not None:
                moved = clean + project(moved - clean, eps, norm)
            moved = ops.clip(moved, low, high)
            # An example whose gradient vanished stays where it was found.
            x_adv = ops.where(expand_like(found, x_adv), x_adv, moved)
            return step + 1, x_adv, found, steps, distances

        batch = ops.shape(labels)
        _, _, _, steps, distances = ops.while_loop(
            going,
            ascend,
            (
                ops.convert_to_tensor(0, "int32"),
                clean,
                ops.zeros(batch, "bool"),
                ops.full(batch, -1, "int32"),
                ops.full(batch, np.nan, "float32"),
            ),
        )
        return steps, distances

    search = backends.compile(search, backends.variables_of(logits))
    found = [
        search(x[start : start + batch_size], y[start : start + batch_size])
        for start in range(0, len(x), batch_size)
    ]
    steps = np.concatenate([s for s, _ in found])
    distances = np.concatenate([d for _, d in found]).astype("float64")
    share = float(np.mean(steps >= 0))
    return ZeroGradientDistance(
        mean_distance=float(np.nanmean(distances)) if share else float("nan"),
        found_share=share,
        distances=distances,
        steps=steps,
    )
