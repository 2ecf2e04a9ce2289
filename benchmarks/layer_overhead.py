"""Training-step time of a small conv net with `DReLU` against `ReLU`.

Two placements are timed, each against the same network with
`keras.layers.ReLU`: "head", a plain conv net with `DReLU` only in its dense
head (the paper's retrofit, Figure 10), and "everywhere", `DReLU` after every
convolution as well. Each is timed with and without XLA, with the caps
stored as themselves (`max_value_parameterization="linear"`, the paper's
layer) and as a logarithm (`"log"`, the default). Steps are timed
alternately in one run so that machine noise hits all alike; the median
step time is reported with the ratios. Goals: DReLU / ReLU <= 1.05, and
the log form at most 2% over the linear one.

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


def drelu(parameterization):
    def build():
        return DReLU(
            max_value_regularizer=1e-3,
            max_value_parameterization=parameterization,
        )

    return build


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
    print(
        f"median training-step time, batch {args.batch_size}, "
        f"{args.steps} alternating steps"
    )
    print(
        f"{'placement':11s} {'XLA':5s} {'ReLU ms':>8s} {'linear ms':>10s} "
        f"{'log ms':>7s} {'log/ReLU':>9s} {'log/linear':>10s}"
    )
    for placement in ("head", "everywhere"):
        for jit_compile in (False, True):
            models = {"ReLU": build(relu, relu)}
            for form in ("linear", "log"):
                cap = drelu(form)
                models[form] = build(
                    cap if placement == "everywhere" else relu, cap
                )
            median = time_pair(models, x, y, args.steps, jit_compile)
            print(
                f"{placement:11s} {str(jit_compile):5s} {median['ReLU']:8.2f} "
                f"{median['linear']:10.2f} {median['log']:7.2f} "
                f"{median['log'] / median['ReLU']:9.3f} "
                f"{median['log'] / median['linear']:10.3f}"
            )
    print("goals: log/ReLU <= 1.05, log/linear <= 1.02")


if __name__ == "__main__":
    main()
