"""Evaluate any Keras classifier's robustness from a `tf.data.Dataset`.

Trains a small CNN on scikit-learn's 8x8 digits for a few seconds (no
download), runs `evaluate_robustness` on the first examples of a test
`tf.data.Dataset` and prints the report: accuracy after each attack, the
worst case per input and the flags that warn of gradient masking. Any
classifier (logits or softmax) and dataset of inputs in [0, 1] will do.

    python examples/evaluate_any_model.py --n-examples 200 --eps 0.1
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from keras_drelu.evaluation import evaluate_robustness  # noqa: E402

# Budgets small enough for a smoke test; the defaults are AutoAttack's.
QUICK = {
    "APGD-CE": {"steps": 10},
    "APGD-T": {"steps": 10, "n_target_classes": 3},
    "Square": {"n_queries": 100},
}


def train_cnn(x, y, epochs):
    """A small CNN ending in logits; any trained Keras classifier will do."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="digits_cnn",
    )
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-examples", type=int, default=200)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="tiny budgets")
    args = parser.parse_args(argv)

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    model = train_cnn(x[:1400], digits.target[:1400], args.epochs)
    test = tf.data.Dataset.from_tensor_slices(
        (x[1400:], digits.target[1400:])
    ).batch(64)

    report = evaluate_robustness(
        model,
        test,
        eps=args.eps,
        n_examples=args.n_examples,
        overrides=QUICK if args.quick else None,
    )
    print(report)
    return report


if __name__ == "__main__":
    main()
