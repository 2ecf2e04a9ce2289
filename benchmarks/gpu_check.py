"""The GPU check: a robust retrofit of ResNet50 on JAX, timed.

Run: `bash benchmarks/gpu_check.sh [--data PATH] [--quick]` (or this file
with `KERAS_BACKEND=jax`).

On the CIFAR-10 subset (`--data`, an `.npz` with `x_train`, `y_train`,
`x_test`, `y_test`, uint8 images), it retrofits ResNet50 (no pretrained
weights, 32x32 inputs, a 256-unit dense head with D-ReLU) in
`mixed_bfloat16`, every step compiled by XLA (JAX jit-compiles every
step), trains one epoch of TRADES (eps 8/255, 10 inner steps, straight
through the caps), evaluates 200 test images with the `"standard"` suite
(APGD-CE, APGD-T, FAB-T, Square) and prints training and evaluation images
per second and the device's peak memory. `--quick` runs the same pipeline
with a tiny backbone and tiny sizes, in seconds on a CPU; flags such as
`--train-images` or `--backbone` change one setting.

It imports neither TensorFlow nor tensorflow-datasets, so it runs where
only `jax[cuda]` and Keras are installed.
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "cifar10-subset.npz"
KEYS = ("x_train", "y_train", "x_test", "y_test")
EPS = 8 / 255

# The full check, and `--quick`'s tiny version of each setting.
FULL = dict(
    backbone="ResNet50", units=256, train_images=None, eval_images=200,
    batch_size=256, attack_steps=10, apgd_steps=None, square_queries=None,
)
QUICK = dict(
    backbone="tiny", units=16, train_images=2048, eval_images=16,
    batch_size=64, attack_steps=2, apgd_steps=2, square_queries=10,
)


def _shown(name, value):
    if value is not None:
        return value
    return "all" if name == "train_images" else "the suite's"


def parse(argv):
    parser = argparse.ArgumentParser(
        prog="gpu_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--data", default=str(DATA),
        help="the CIFAR-10 subset, an .npz with arrays "
             f"{', '.join(KEYS)} (default: %(default)s)",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="a tiny backbone and tiny sizes: the pipeline in seconds on a CPU",
    )
    for name, value in FULL.items():
        parser.add_argument(
            "--" + name.replace("_", "-"), type=str if name == "backbone" else int,
            help=f"instead of {_shown(name, value)} (--quick: "
                 f"{_shown(name, QUICK[name])})",
        )
    return parser.parse_args(argv)


def load(path):
    """`(x_train, y_train, x_test, y_test)` of the `.npz` at `path`."""
    import numpy as np

    if not os.path.isfile(path):
        sys.exit(f"gpu_check: error: no .npz file at {path}; pass --data PATH")
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in KEYS if key not in data.files]
        if missing:
            sys.exit(
                f"gpu_check: error: {path} lacks {missing}; it holds "
                f"{sorted(data.files)}"
            )
        print(f"data: {os.path.basename(path)}, arrays {sorted(data.files)}")
        x_train, y_train, x_test, y_test = (data[key] for key in KEYS)
    # Images in [0, 1], the models' input convention.
    return (
        x_train.astype("float32") / 255.0, y_train.astype("int32"),
        x_test.astype("float32") / 255.0, y_test.astype("int32"),
    )


def tiny_backbone():
    import keras

    return keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(16, 3, strides=2),
        ],
        name="tiny",
    )


class StepClock:
    """Seconds from the end of the first training step to the last one.

    The first step includes XLA's compilation; the rest is throughput.
    """

    def __init__(self):
        self.first = self.last = None
        self.steps = 0

    def callback(self):
        import keras

        clock = self

        class Clock(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                now = time.perf_counter()
                if clock.first is None:
                    clock.first = now
                clock.last = now
                clock.steps += 1

        return Clock()


def peak_memory():
    """The device's peak memory in use, in GiB, or `None` where JAX does
    not report it (CPU)."""
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**30


def main(argv=None):
    began = time.perf_counter()
    args = parse(argv)
    settings = {
        name: value if getattr(args, name) is None else getattr(args, name)
        for name, value in (QUICK if args.quick else FULL).items()
    }
    import jax
    import keras

    if keras.backend.backend() != "jax":
        sys.exit(
            "gpu_check: error: runs on the JAX backend; KERAS_BACKEND is "
            f"{keras.backend.backend()!r}"
        )
    from keras_drelu.evaluation import evaluate_robustness
    from keras_drelu.evaluation.suites import budget_overrides
    from keras_drelu.training import train
    from retrofit.placements import build_retrofit_model

    device = jax.local_devices()[0]
    print(
        f"device: {device.device_kind} ({jax.default_backend()}), JAX "
        f"{jax.__version__}, Keras {keras.__version__}"
    )
    x_train, y_train, x_test, y_test = load(args.data)
    if settings["train_images"]:
        x_train = x_train[: settings["train_images"]]
        y_train = y_train[: settings["train_images"]]
    x_eval = x_test[: settings["eval_images"]]
    y_eval = y_test[: settings["eval_images"]]

    keras.config.set_dtype_policy("mixed_bfloat16")
    keras.utils.set_random_seed(0)
    backbone = settings["backbone"]
    model = build_retrofit_model(
        tiny_backbone() if backbone == "tiny" else backbone,
        x_train.shape[1:], int(y_train.max()) + 1, placement="head",
        activation="drelu", units=settings["units"],
        weights=None,
    )
    print(
        f"model: {model.name}, {model.count_params():,} parameters, "
        f"{keras.config.dtype_policy().name}, XLA (jax.jit) on every step"
    )

    clock = StepClock()
    start = time.perf_counter()
    result = train(
        model, (x_train, y_train), recipe="trades", epochs=1, eps=EPS,
        attack_steps=settings["attack_steps"],
        batch_size=settings["batch_size"], default_callbacks=False,
        callbacks=[clock.callback()], seed=0, verbose=0,
    )
    total = time.perf_counter() - start
    batch = settings["batch_size"]
    steady = (
        "n/a (one step)" if clock.steps < 2 else
        f"{(len(x_train) - batch) / (clock.last - clock.first):.1f}"
    )
    print(
        f"training: 1 epoch of TRADES (eps 8/255, inner PGD-{settings['attack_steps']}) "
        f"on {len(x_train)} images, batch {batch}: "
        f"{total:.1f} s with compilation; {steady} images/s after the "
        f"first step; task loss {result.history['task_loss'][-1]:.4f}"
    )

    start = time.perf_counter()
    report = evaluate_robustness(
        result.model, x_eval, y_eval, eps=EPS, suite="standard",
        batch_size=batch, verbose=False,
        overrides=budget_overrides(
            apgd_steps=settings["apgd_steps"],
            square_queries=settings["square_queries"],
        ) or None,
    )
    seconds = time.perf_counter() - start
    print(
        f"evaluation: suite standard on {len(x_eval)} images: {seconds:.1f} s "
        f"with compilation, {len(x_eval) / seconds:.1f} images/s; clean "
        f"{report.clean_accuracy:.1%}, worst case "
        f"{report.worst_case_accuracy:.1%}"
    )
    for name, spent in report.timings.items():
        print(f"  {name}: {spent:.1f} s")
    peak = peak_memory()
    print(
        "peak device memory: "
        + ("n/a (not reported for this device)" if peak is None
           else f"{peak:.2f} GiB")
    )
    print(f"total: {time.perf_counter() - began:.0f} s (goal: at most 300 s on one GPU)")


if __name__ == "__main__":
    main()
