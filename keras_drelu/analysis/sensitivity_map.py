"""Sensitivity maps: which input pixels an attack can push hardest."""

import dataclasses
import math

import keras
import numpy as np
from keras import ops

from keras_drelu import backends
from keras_drelu.arguments import check_inputs_and_labels
from keras_drelu.arguments import check_positive
from keras_drelu.outputs import check_logits
from keras_drelu.outputs import logits_model


@dataclasses.dataclass(frozen=True)
class SensitivityMaps:
    """Sensitivity maps of a batch of inputs.

    Attributes:
        maps: One map per input, of the input's shape.
        sums: The sum of each map over all its entries.
    """

    maps: np.ndarray
    sums: np.ndarray


def sensitivity_map(model, x, y, batch_size=256):
    """Computes the sensitivity map of each input for its true class.

    Formula:
    ```python
    smap(x) = max(0, dZ_t/dx * sum_{c != t} dZ_c/dx)
    ```
    per input entry, where `Z` are the pre-softmax outputs and `t` the true
    class (Sooksatra & Rivas, 2022; used by Sooksatra, Hamerly & Rivas,
    2023, section 7). An entry is positive where raising or lowering that
    pixel moves the true logit and the other logits the same way, so that
    an attacker can trade one against the other there. A final softmax of
    `model` is stripped with `logits_model`.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([
    ...     keras.Input((2,)),
    ...     keras.layers.Dense(2, use_bias=False, kernel_initializer=(
    ...         keras.initializers.Constant([[1.0, 2.0], [-1.0, 3.0]]))),
    ... ])
    >>> result = sensitivity_map(model, np.zeros((1, 2)), np.array([0]))
    >>> result.maps.tolist(), result.sums.tolist()
    ([[2.0, 0.0]], [2.0])

    Args:
        model: A built Sequential or functional classifier, ending in logits
            or in a softmax.
        x: Batch of inputs.
        y: Integer true class of each input.
        batch_size: Number of inputs differentiated at once. Defaults to
            `256`.

    Returns:
        A `SensitivityMaps` record.
    """
    x, y = check_inputs_and_labels(x, y)
    batch_size = check_positive("batch_size", batch_size, integer=True)
    logits = logits_model(model)
    first = keras.ops.convert_to_numpy(logits(x[:batch_size], training=False))
    check_logits(first, model.name)
    num_classes = first.shape[-1]
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(
            f"Argument `y` should hold classes in [0, {num_classes}). "
            f"Received: y with values in [{y.min()}, {y.max()}]"
        )

    def gradients(inputs, labels):
        # Examples do not interact at inference, so the gradient of a sum
        # over the batch is each example's own gradient: two backward passes
        # give dZ_t/dx and sum_c dZ_c/dx without a full Jacobian.
        def true_logit(inputs):
            z = logits(inputs, training=False)
            index = ops.cast(labels, "int32")[:, None]
            return ops.sum(ops.take_along_axis(z, index, axis=1)), None

        def all_logits(inputs):
            return ops.sum(logits(inputs, training=False)), None

        _, _, grad_true = backends.value_and_grad(true_logit, inputs)
        _, _, grad_all = backends.value_and_grad(all_logits, inputs)
        return ops.maximum(0.0, grad_true * (grad_all - grad_true))

    gradients = backends.compile(gradients, backends.variables_of(logits))
    maps = np.concatenate(
        [
            gradients(
                x[start : start + batch_size], y[start : start + batch_size]
            )
            for start in range(0, len(x), batch_size)
        ]
    )
    return SensitivityMaps(
        maps=maps, sums=maps.reshape(len(maps), -1).sum(axis=1)
    )


def _as_images(maps, image_shape):
    maps = np.asarray(maps)
    if image_shape is not None:
        if math.prod(maps.shape[1:]) != math.prod(image_shape):
            raise ValueError(
                f"Maps of shape {maps.shape[1:]} cannot be shown as images of "
                f"shape {tuple(image_shape)}. Received: "
                f"image_shape={image_shape!r}"
            )
        maps = maps.reshape((len(maps), *image_shape))
    if maps.ndim == 4:
        # A colour pixel is as sensitive as its channels together.
        maps = maps.sum(axis=-1)
    if maps.ndim != 3:
        raise ValueError(
            "Maps should be images, (H, W) or (H, W, C) per input; pass "
            "`image_shape` for flat inputs. Received: maps of shape "
            f"{maps.shape[1:]} per input"
        )
    return maps


def plot_sensitivity_maps(
    results, path=None, image_shape=None, max_images=8
):
    """Draws sensitivity maps as a grid: one row per model, one column per
    input, each titled with its sum.

    Every panel shares one colour scale (the paper pins it with a reference
    pixel; here a colour bar shows it), so rows compare at a glance, as in
    Figure 11 of Sooksatra, Hamerly & Rivas (2023).

    Example:

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> maps = SensitivityMaps(np.ones((2, 4)), np.array([4.0, 4.0]))
    >>> figure = plot_sensitivity_maps({"ReLU": maps}, image_shape=(2, 2))
    >>> [ax.get_title() for ax in figure.axes[:2]]
    ['ReLU\\nsum 4', 'ReLU\\nsum 4']

    Args:
        results: A `SensitivityMaps`, or a dict from a label (such as
            `"max value 0.1"`) to one, each over the same inputs.
        path: Where to save the PNG. Defaults to `None`, not saved.
        image_shape: Shape of one image, `(H, W)` or `(H, W, C)`, for maps of
            flat inputs such as a dense network's. Defaults to `None`, the
            maps' own shape.
        max_images: Most inputs (columns) to draw. Defaults to `8`.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    if isinstance(results, SensitivityMaps):
        results = {"": results}
    if not results:
        raise ValueError("Argument `results` should hold at least one record.")
    max_images = check_positive("max_images", max_images, integer=True)
    images = {
        label: _as_images(result.maps[:max_images], image_shape)
        for label, result in results.items()
    }
    columns = min(len(maps) for maps in images.values())
    vmax = max(float(maps[:columns].max()) for maps in images.values())
    figure, axes = plt.subplots(
        len(images),
        columns,
        figsize=(1.8 * columns + 0.8, 1.9 * len(images)),
        squeeze=False,
    )
    for row, (label, maps) in enumerate(images.items()):
        for column in range(columns):
            ax = axes[row, column]
            shown = ax.imshow(
                maps[column], cmap="Reds", vmin=0.0, vmax=vmax or 1.0
            )
            total = results[label].sums[column]
            ax.set_title(f"{label}\nsum {total:.3g}".lstrip(), fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    figure.colorbar(shown, ax=axes, shrink=0.8, label="smap")
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure
