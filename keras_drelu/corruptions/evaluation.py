"""Accuracy under common corruptions, and the mCE of Hendrycks & Dietterich."""

import dataclasses
import json
import math
import zlib

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from keras_drelu.arguments import check_positive
from keras_drelu.corruptions.registry import check_names
from keras_drelu.corruptions.registry import check_severities
from keras_drelu.corruptions.registry import corrupt


@dataclasses.dataclass
class CorruptionResult:
    """Accuracies per corruption and severity, with a reference's if given.

    `accuracy[name][severity]` is the accuracy on images corrupted by `name`
    at `severity`; `reference_accuracy` has the same layout for the
    reference model, or is `None`.
    """

    clean_accuracy: float
    accuracy: dict
    reference_clean_accuracy: float = None
    reference_accuracy: dict = None

    @property
    def mean_corruption_accuracy(self):
        """Accuracy averaged over every corruption and severity."""
        return float(
            np.mean([a for row in self.accuracy.values() for a in row.values()])
        )

    @property
    def corruption_errors(self):
        """CE per corruption, in percent, or `None` without a reference.

        `CE_c = sum_s E(c, s) / sum_s E_ref(c, s)`, the model's errors
        summed over severities relative to the reference's; NaN where the
        reference makes no error at all.
        """
        if self.reference_accuracy is None:
            return None
        errors = {}
        for name, row in self.accuracy.items():
            own = sum(1.0 - a for a in row.values())
            ref = sum(1.0 - a for a in self.reference_accuracy[name].values())
            errors[name] = 100.0 * own / ref if ref > 0 else math.nan
        return errors

    @property
    def mce(self):
        """Mean corruption error in percent (100 = as bad as the reference)."""
        errors = self.corruption_errors
        return None if errors is None else float(np.mean(list(errors.values())))

    def to_dict(self):
        return {
            "clean_accuracy": self.clean_accuracy,
            "accuracy": self.accuracy,
            "mean_corruption_accuracy": self.mean_corruption_accuracy,
            "reference_clean_accuracy": self.reference_clean_accuracy,
            "reference_accuracy": self.reference_accuracy,
            "corruption_errors": self.corruption_errors,
            "mce": self.mce,
        }

    def to_json(self, path=None):
        """The result as JSON text, also written to `path` if given.

        Severities become string keys, as JSON requires.
        """
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            with open(path, "w") as file:
                file.write(text + "\n")
        return text

    def to_markdown(self):
        """A Markdown table: one row per corruption, one column per severity."""
        severities = sorted(next(iter(self.accuracy.values())))
        errors = self.corruption_errors
        header = ["corruption"] + [f"s{s}" for s in severities] + ["mean"]
        if errors is not None:
            header.append("CE %")
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for name, row in self.accuracy.items():
            cells = [name] + [f"{row[s]:.3f}" for s in severities]
            cells.append(f"{np.mean(list(row.values())):.3f}")
            if errors is not None:
                cells.append(f"{errors[name]:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(
            f"Clean accuracy {self.clean_accuracy:.3f}, mean corruption "
            f"accuracy {self.mean_corruption_accuracy:.3f}"
            + ("" if errors is None else f", mCE {self.mce:.1f}%")
            + "."
        )
        return "\n".join(lines)

    def save_heatmap(self, path, title=None):
        """Writes a heat map of accuracy (corruption x severity) as a PNG."""
        # Imported here so that evaluating never needs a plotting backend.
        from matplotlib.figure import Figure

        names = list(self.accuracy)
        severities = sorted(self.accuracy[names[0]])
        grid = np.array(
            [[self.accuracy[n][s] for s in severities] for n in names]
        )
        figure = Figure(
            figsize=(1.2 + 0.8 * len(severities), 0.9 + 0.4 * len(names))
        )
        axes = figure.add_subplot()
        image = axes.imshow(
            grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto"
        )
        axes.set_xticks(range(len(severities)), [str(s) for s in severities])
        axes.set_yticks(range(len(names)), names)
        axes.set_xlabel("severity")
        for i in range(len(names)):
            for j in range(len(severities)):
                axes.text(
                    j,
                    i,
                    f"{grid[i, j]:.2f}",
                    ha="center",
                    va="center",
                    color="white" if grid[i, j] < 0.5 else "black",
                    fontsize=8,
                )
        axes.set_title(
            title
            or f"accuracy (clean {self.clean_accuracy:.2f}"
            + ("" if self.mce is None else f", mCE {self.mce:.0f}%")
            + ")"
        )
        figure.colorbar(image, ax=axes, label="accuracy")
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        return path


def _labels(y):
    y = np.asarray(y)
    return (
        y.argmax(axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(-1)
    )


def _predicted_labels(model, images):
    logits = model(images, training=False)
    return tf.argmax(logits, axis=-1, output_type=tf.int64).numpy()


def evaluate_corruptions(
    model,
    x,
    y,
    corruptions=None,
    severities=(1, 2, 3, 4, 5),
    reference=None,
    batch_size=256,
    seed=0,
    verbose=True,
):
    """Accuracy of `model` on `x` under each corruption and severity.

    Every batch is corrupted once, with a seed derived from `seed`, the
    corruption, the severity and the batch, so results repeat exactly and a
    reference model sees the very same images. The mean corruption error
    (Hendrycks & Dietterich, ICLR 2019) is
    `mCE = mean_c sum_s E(c, s) / sum_s E_ref(c, s)`, in percent.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((8, 8, 1)),
    ...     keras.layers.Flatten(), keras.layers.Dense(2)])
    >>> x = np.random.default_rng(0).uniform(size=(4, 8, 8, 1))
    >>> result = evaluate_corruptions(model, x, [0, 1, 0, 1],
    ...     corruptions=["contrast"], severities=[1, 5], reference=model,
    ...     verbose=False)
    >>> sorted(result.accuracy["contrast"]), result.mce
    ([1, 5], 100.0)

    Args:
        model: A classifier taking images in [0, 1] to logits or
            probabilities.
        x: Float images in [0, 1], shape `(n, height, width, channels)`.
        y: Integer labels `(n,)` or one-hot labels `(n, classes)`.
        corruptions: Names from `CORRUPTIONS`, or `None` for all. Defaults
            to `None`.
        severities: Severities from 1 to 5. Defaults to `(1, 2, 3, 4, 5)`.
        reference: `None`, a reference model evaluated on the same images,
            or a `CorruptionResult` of a reference covering these
            corruptions and severities; it gives the mCE. Defaults to
            `None`.
        batch_size: Images corrupted and classified at once. Defaults to
            `256`.
        seed: Int seed of the corruptions. Defaults to `0`.
        verbose: Whether to show a progress bar. Defaults to `True`.

    Returns:
        A `CorruptionResult`.
    """
    names = check_names(corruptions)
    severities = check_severities(severities)
    batch_size = check_positive("batch_size", batch_size, integer=True)
    x = np.asarray(x)
    labels = _labels(y)
    if len(labels) != len(x):
        raise ValueError(
            "Arguments `x` and `y` should hold as many examples. Received: "
            f"{len(x)} images and {len(labels)} labels"
        )
    reference_model = None
    if isinstance(reference, CorruptionResult):
        for name in names:
            missing = [
                s
                for s in severities
                if s not in reference.accuracy.get(name, {})
            ]
            if missing:
                raise ValueError(
                    f"The reference result lacks corruption {name!r} at "
                    f"severities {missing}"
                )
    elif reference is not None:
        if not callable(reference):
            raise TypeError(
                "Argument `reference` should be None, a model or a "
                f"CorruptionResult. Received: reference={reference!r}"
            )
        reference_model = reference
    models = [model] if reference_model is None else [model, reference_model]

    def accuracies(name, severity):
        hits = np.zeros(len(models))
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size]
            if name is not None:
                # crc32 rather than hash(): stable across Python processes.
                key = zlib.crc32(f"{name}/{severity}/{start}".encode())
                batch = corrupt(
                    batch, name, severity, seed=(seed, key & 0x7FFFFFFF)
                )
            truth = labels[start : start + batch_size]
            for i, m in enumerate(models):
                hits[i] += np.sum(_predicted_labels(m, batch) == truth)
        return hits / len(x)

    clean = accuracies(None, None)
    results = [{} for _ in models]
    cells = [(n, s) for n in names for s in severities]
    for name, severity in tqdm(
        cells, desc="corruptions", disable=not verbose, leave=False
    ):
        for i, value in enumerate(accuracies(name, severity)):
            results[i].setdefault(name, {})[severity] = float(value)
    if reference_model is not None:
        return CorruptionResult(
            float(clean[0]), results[0], float(clean[1]), results[1]
        )
    if reference is not None:
        return CorruptionResult(
            float(clean[0]),
            results[0],
            reference.clean_accuracy,
            {
                n: {s: reference.accuracy[n][s] for s in severities}
                for n in names
            },
        )
    return CorruptionResult(float(clean[0]), results[0])
