"""How far each layer's outputs move under an adversarial perturbation."""

import dataclasses

import keras
import numpy as np

from keras_drelu.arguments import check_positive
from keras_drelu.outputs import check_graph_model


@dataclasses.dataclass(frozen=True)
class PerturbationGrowth:
    """Per-layer distances between clean and adversarial activations.

    Attributes:
        layer_names: Names of the measured layers, in model order.
        linf: Mean over examples of `max |h(x_adv) - h(x)|`, per layer.
        l2: Mean over examples of `||h(x_adv) - h(x)||_2`, per layer.
        num_examples: Number of examples averaged over.
    """

    layer_names: tuple
    linf: np.ndarray
    l2: np.ndarray
    num_examples: int


def _check_inputs(x, x_adv):
    x = np.asarray(x)
    x_adv = np.asarray(x_adv)
    if x.shape != x_adv.shape or x.ndim < 2 or len(x) == 0:
        raise ValueError(
            "Arguments `x` and `x_adv` should be non-empty batches of the "
            f"same shape. Received: x.shape={x.shape}, "
            f"x_adv.shape={x_adv.shape}"
        )
    return x, x_adv


def _select_layers(model, layers):
    candidates = [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    if layers is None:
        return candidates
    by_name = {layer.name: layer for layer in candidates}
    chosen = []
    for layer in layers:
        name = layer if isinstance(layer, str) else getattr(layer, "name", None)
        if name not in by_name or (
            not isinstance(layer, str) and by_name[name] is not layer
        ):
            raise ValueError(
                f"Layer {layer!r} is not a top-level layer of model "
                f"{model.name!r}; its layers are {list(by_name)}"
            )
        chosen.append(by_name[name])
    if not chosen:
        raise ValueError(
            "Argument `layers` should name at least one layer. Received: "
            f"layers={layers!r}"
        )
    return chosen


def _layer_output(layer):
    try:
        return layer.output
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"Layer {layer.name!r} is called more than once in the model, so "
            "its output is ambiguous; pass `layers` without it"
        ) from error


def _flat(outputs):
    parts = keras.tree.flatten(outputs)
    arrays = [keras.ops.convert_to_numpy(part) for part in parts]
    return np.concatenate([a.reshape(len(a), -1) for a in arrays], axis=1)


def perturbation_growth(model, x, x_adv, layers=None, batch_size=256):
    """Measures how an input perturbation grows through the layers of `model`.

    For each layer output `h` and example, the distances
    `max |h(x_adv) - h(x)|` (L-inf) and `||h(x_adv) - h(x)||_2` (L2) over all
    units are averaged over examples (Sooksatra, Hamerly & Rivas, 2023,
    Figure 1). Plain ReLUs let a small input perturbation grow from layer to
    layer; a low cap stops it at the capped layer.

    Example:

    >>> import numpy as np
    >>> model = keras.Sequential([
    ...     keras.Input((2,)),
    ...     keras.layers.Dense(2, kernel_initializer="identity", name="h"),
    ...     keras.layers.Dense(1, kernel_initializer="ones", name="out"),
    ... ])
    >>> growth = perturbation_growth(model, [[0.0, 0.0]], [[0.3, -0.4]])
    >>> growth.layer_names, growth.linf.round(2).tolist()
    (('h', 'out'), [0.4, 0.1])
    >>> growth.l2.round(2).tolist()
    [0.5, 0.1]

    Args:
        model: A built, single-input Sequential or functional Keras model.
            A nested model counts as one layer.
        x: Batch of clean inputs.
        x_adv: Batch of perturbed inputs, one per clean input.
        layers: Top-level layers (or their names) to measure. Defaults to
            `None`, every layer after the inputs, the output layer included.
        batch_size: Number of examples run through the model at once.
            Defaults to `256`.

    Returns:
        A `PerturbationGrowth` record.
    """
    inputs = check_graph_model(model, "`perturbation_growth`")
    x, x_adv = _check_inputs(x, x_adv)
    batch_size = check_positive("batch_size", batch_size, integer=True)
    chosen = _select_layers(model, layers)
    probe = keras.Model(inputs, [_layer_output(layer) for layer in chosen])
    linf = np.zeros(len(chosen))
    l2 = np.zeros(len(chosen))

    def run(inputs):
        outputs = probe(inputs, training=False)
        # A model with one output returns the tensor itself, not a list.
        return [outputs] if len(chosen) == 1 else outputs

    for start in range(0, len(x), batch_size):
        clean = run(x[start : start + batch_size])
        adversarial = run(x_adv[start : start + batch_size])
        for i, (h, h_adv) in enumerate(zip(clean, adversarial)):
            difference = _flat(h_adv) - _flat(h)
            linf[i] += np.abs(difference).max(axis=1).sum()
            l2[i] += np.sqrt(np.square(difference).sum(axis=1)).sum()
    return PerturbationGrowth(
        layer_names=tuple(layer.name for layer in chosen),
        linf=linf / len(x),
        l2=l2 / len(x),
        num_examples=len(x),
    )


def plot_perturbation_growth(growths, norm="linf", ax=None):
    """Plots the growth of perturbations over layers, one line per model.

    Example:

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> growth = PerturbationGrowth(("h1", "h2"), np.array([0.1, 0.4]),
    ...                             np.array([1.0, 2.0]), 3)
    >>> ax = plot_perturbation_growth({"ReLU": growth}, norm="l2")
    >>> ax.get_ylabel()
    'mean L2 distance'

    Args:
        growths: A `PerturbationGrowth`, or a dict from a label (such as
            `"max value 0.1"`) to one.
        norm: `"linf"` or `"l2"`, the distance to plot. Defaults to
            `"linf"`.
        ax: Matplotlib axes to draw on. Defaults to `None`, a new figure.

    Returns:
        The matplotlib axes.
    """
    import matplotlib.pyplot as plt

    if norm not in ("linf", "l2"):
        raise ValueError(
            f"Argument `norm` should be 'linf' or 'l2'. Received: norm={norm!r}"
        )
    if isinstance(growths, PerturbationGrowth):
        growths = {None: growths}
    if not growths:
        raise ValueError("Argument `growths` should hold at least one record.")
    names = next(iter(growths.values())).layer_names
    if any(len(g.layer_names) != len(names) for g in growths.values()):
        raise ValueError(
            "Every record in `growths` should measure the same number of "
            "layers. Received: "
            f"{ {label: len(g.layer_names) for label, g in growths.items()} }"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for label, growth in growths.items():
        positions = np.arange(len(growth.layer_names))
        ax.plot(positions, getattr(growth, norm), marker="o", label=label)
    ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    ax.set_xlabel("layer")
    ax.set_ylabel(f"mean {'L-inf' if norm == 'linf' else 'L2'} distance")
    if any(label is not None for label in growths):
        ax.legend()
    ax.figure.tight_layout()
    return ax
