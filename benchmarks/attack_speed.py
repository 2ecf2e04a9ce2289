"""Throughput of our PGD-20 and APGD-CE-100 against IBM ART's, same models.

Run: `python benchmarks/attack_speed.py [--batch 128] [--repeats 5]`.

Both libraries attack the same Keras models (the S-ReLU paper's dense MNIST
net and a shallow CNN, untrained: speed does not depend on the weights) on
the same batch; labels are the model's own predictions, so every input
starts correctly classified and neither library can skip any. Printed:
images per second of each, ours / ART, and our time against the floor of
`steps x one forward+backward pass` (the cost of the gradients alone).
ART (`adversarial-robustness-toolbox`) is a dev dependency.
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from keras_drelu.attacks import APGD
from keras_drelu.attacks import PGD
from keras_drelu.attacks import cross_entropy

EPS = 0.1


def dense_net():
    """The S-ReLU paper's MNIST net: 392 and 196 hidden units."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(392, activation="relu"),
            keras.layers.Dense(196, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="dense_net",
    )


def shallow_cnn():
    """A shallow MNIST CNN: two convolutions and a dense layer."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="shallow_cnn",
    )


def seconds(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def gradient_floor(model, x, y, steps):
    """`steps` compiled forward+backward passes back to back, ready to time.

    Each pass starts from the last gradient's sign, so none can be folded
    away; nothing else is computed.
    """

    @tf.function
    def passes(x, y):
        def one(i, z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                loss = tf.reduce_sum(cross_entropy(model(z, training=False), y))
            return i + 1, x + 1e-3 * tf.sign(tape.gradient(loss, z))

        return tf.while_loop(lambda i, _: i < steps, one, (0, x))[1]

    x, y = tf.constant(x), tf.constant(y.astype("int32"))
    passes(x, y)
    return lambda: passes(x, y).numpy()


def time_case(ours, theirs, floor, x, y, repeats):
    """Fastest times of ours, ART's and the floor.

    The three are interleaved and each keeps its fastest of `repeats` runs,
    so that load from other processes on a shared machine biases none.
    """
    ours.generate(x, y)  # Traces the graph once; not timed.
    times = {"ours": [], "art": [], "floor": []}
    for _ in range(repeats):
        times["ours"].append(seconds(lambda: ours.generate(x, y)))
        times["art"].append(seconds(lambda: theirs.generate(x, y)))
        times["floor"].append(seconds(floor))
    return {key: min(values) for key, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"batch {args.batch}, TensorFlow {tf.__version__}, Keras "
        f"{keras.__version__}, fastest of {args.repeats} interleaved runs"
    )
    header = (
        f"{'model':<12} {'attack':<12} {'ours img/s':>11} {'ART img/s':>10} "
        f"{'ours/ART':>9} {'pass (ms)':>10} {'ours/floor':>11}"
    )
    print(header)
    print("-" * len(header))
    for build in (dense_net, shallow_cnn):
        benchmark_model(build, args.batch, args.repeats)
    print(
        "ours/ART: throughput ratio (goal >= 5x); ours/floor: our time over "
        "steps x one forward+backward pass (goal <= 1.3x)."
    )


def benchmark_model(build, batch, repeats):
    from art.attacks.evasion import AutoProjectedGradientDescent
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import TensorFlowV2Classifier

    keras.utils.set_random_seed(0)
    model = build()
    x = (
        np.random.default_rng(0)
        .uniform(size=(batch, 28, 28, 1))
        .astype("float32")
    )
    y = np.argmax(model.predict(x, verbose=0), axis=1)
    classifier = TensorFlowV2Classifier(
        model,
        nb_classes=10,
        input_shape=(28, 28, 1),
        loss_object=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True
        ),
        clip_values=(0.0, 1.0),
    )
    cases = [
        (
            "PGD-20",
            20,
            PGD(model, eps=EPS, steps=20, batch_size=batch, seed=0),
            ProjectedGradientDescent(
                classifier,
                eps=EPS,
                eps_step=2.5 * EPS / 20,
                max_iter=20,
                num_random_init=1,
                batch_size=batch,
                verbose=False,
            ),
        ),
        (
            "APGD-CE-100",
            100,
            APGD(model, eps=EPS, steps=100, batch_size=batch, seed=0),
            AutoProjectedGradientDescent(
                classifier,
                eps=EPS,
                eps_step=2 * EPS,
                max_iter=100,
                nb_random_init=1,
                batch_size=batch,
                verbose=False,
            ),
        ),
    ]
    for name, steps, ours, theirs in cases:
        floor = gradient_floor(model, x, y, steps)
        best = time_case(ours, theirs, floor, x, y, repeats)
        print(
            f"{model.name:<12} {name:<12} {batch / best['ours']:>11.0f} "
            f"{batch / best['art']:>10.0f} "
            f"{best['art'] / best['ours']:>8.1f}x "
            f"{1000 * best['floor'] / steps:>10.2f} "
            f"{best['ours'] / best['floor']:>10.2f}x"
        )


if __name__ == "__main__":
    main()
