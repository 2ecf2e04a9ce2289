"""Training-step time of a small conv net with `DReLU` against `ReLU`.

Two placements are timed, each against the same network with
`keras.layers.ReLU`: "head", a plain conv net with `DReLU` only in its dense
head (the paper's retrofit, Figure 10), and "everywhere", `DReLU` after every
convolution as well. Each is timed with and without XLA. Steps are timed
alternately in one run so that machine noise hits both alike; the median
step time is reported with the ratio. Goal: DReLU / ReLU <= 1.05.

    python benchmarks/layer_overhead.py [--steps 100] [--batch-size 128]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_drelu import DReLU  # noqa: E402


def build(conv_activation, head_activation):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(32, 3, padding="same"),
            conv_activation(),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, padding="same"),
            conv_activation(),
            keras.layers.MaxPooling2D(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(256),
            head_activation(),
            keras.layers.Dense(10),
        ]
    )


def drelu():
    return DReLU(max_value_regularizer=1e-3)


def time_pair(models, x, y, steps, jit_compile):
    for model in models.values():
        model.compile(
            "adam",
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
        for _ in range(5):  # trace and warm up
            model.train_on_batch(x, y)
    times = {name: [] for name in models}
    for _ in range(steps):
        for name, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) * 1e3 for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(args.batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, args.batch_size)
    relu = keras.layers.ReLU
    placements = {
        "head": (relu, drelu),
        "everywhere": (drelu, drelu),
    }
    print(
        f"median training-step time, batch {args.batch_size}, "
        f"{args.steps} alternating steps"
    )
    print(f"{'placement':11s} {'XLA':5s} {'ReLU ms':>8s} {'DReLU ms':>9s} ratio")
    for placement, (conv_act, head_act) in placements.items():
        for jit_compile in (False, True):
            median = time_pair(
                {
                    "ReLU": build(relu, relu),
                    "DReLU": build(conv_act, head_act),
                },
                x,
                y,
                args.steps,
                jit_compile,
            )
            ratio = median["DReLU"] / median["ReLU"]
            print(
                f"{placement:11s} {str(jit_compile):5s} {median['ReLU']:8.2f} "
                f"{median['DReLU']:9.2f} {ratio:.3f}"
            )
    print("goal: ratio <= 1.05")


if __name__ == "__main__":
    main()
