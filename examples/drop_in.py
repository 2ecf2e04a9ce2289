"""DReLU as a drop-in Keras layer: the README's first example, as a script.

Trains a small dense network with a D-ReLU hidden layer on scikit-learn's
bundled digits (no download), then prints the test accuracy and the caps the
penalty pushed down.

    python examples/drop_in.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from keras_drelu import DReLU  # noqa: E402
from keras_drelu import max_values  # noqa: E402


def main():
    keras.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target
    x_train, x_test, y_train, y_test = x[:1500], x[1500:], y[:1500], y[1500:]

    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256),
            DReLU(max_value_regularizer=1e-3),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=30, batch_size=64, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    caps = max_values(model)["d_re_lu"]
    print(f"test accuracy: {accuracy:.3f}")
    print(
        f"caps after training: min {caps.min():.2f}, mean {caps.mean():.2f}, "
        f"max {caps.max():.2f} (initial 100)"
    )


if __name__ == "__main__":
    main()
