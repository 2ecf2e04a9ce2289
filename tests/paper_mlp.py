"""The S-ReLU paper's dense MNIST net (784-392-196-10), trained once per run.

Shared by the test files that need a model whose input is a vector
(`tests/test_evaluation_inputs.py`) or a larger image than the 8x8 digits
(`tests/test_attack_crosschecks.py`). A session fixture in `conftest.py`
would be the usual home; this module keeps it beside the tests that use it.
"""

import functools

import numpy as np
from conftest import SHARED_DATA


@functools.lru_cache(maxsize=None)
def paper_mlp():
    """`(model, x_test, y_test)`: the MLP on flat MNIST, about 97% accurate.

    Trained for 3 epochs on the first 12000 training images (a few seconds);
    `x_test` are the first 500 test images, flattened to 784 values in
    [0, 1]. Do not train or modify the model in a test.
    """
    import keras

    data = np.load(SHARED_DATA / "mnist.npz")
    x = (data["x_train"][:12000] / 255.0).astype("float32").reshape(-1, 784)
    y = data["y_train"][:12000].astype("int64")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(392, activation="relu"),
            keras.layers.Dense(196, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="paper_mlp",
    )
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(x, y, epochs=3, batch_size=128, verbose=0)
    x_test = (data["x_test"][:500] / 255.0).astype("float32").reshape(-1, 784)
    return model, x_test, data["y_test"][:500].astype("int64")
