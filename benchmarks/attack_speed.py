"""Throughput of our attacks on TensorFlow and JAX against IBM ART's.

Run: `python benchmarks/attack_speed.py [--batch 128] [--repeats 5]
[--copies 3] [--models dense_net shallow_cnn] [--quick]`.

Both libraries attack the same Keras models (the S-ReLU paper's dense MNIST
net and a shallow CNN, untrained: speed does not depend on the weights) on
the same batch; labels are the model's own predictions, so every input
starts correctly classified and neither library can skip any. Attacks:
PGD-20 and APGD-CE-100 (images per second) and L-inf Square (queries per
second: one query is one input's proposal, one forward pass of it), at an
`eps` small enough that no input is misclassified, so that every input
spends every query in both libraries (the script checks it).

A process has one Keras backend: ours on JAX is timed by this script run
again in a child process (`KERAS_BACKEND=jax`), on the same weights and
batch, passed to it in a file; ART (TensorFlow only) and ours on TensorFlow
are timed here. Printed per backend: our throughput, ours / ART, JAX / TF,
one pass of the model (forward and backward; forward only for Square) and
our time over the floor, `steps x one pass`, the cost of the model alone.
ART (`adversarial-robustness-toolbox`) is a dev dependency.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version

# The backend is chosen before Keras is imported: TensorFlow here (ART
# needs it), JAX in the child process.
CHILD = "--jax-child" in sys.argv
os.environ["KERAS_BACKEND"] = "jax" if CHILD else "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from keras_drelu import backends  # noqa: E402
from keras_drelu.attacks import APGD  # noqa: E402
from keras_drelu.attacks import PGD  # noqa: E402
from keras_drelu.attacks import Square  # noqa: E402
from keras_drelu.attacks import cross_entropy  # noqa: E402

EPS = 0.1
# Square's radius: small enough that no input of these models is
# misclassified within the budget, so that both libraries query every input
# at every iteration.
SQUARE_EPS = 1e-3
GOAL_FLOOR = 1.2
GOAL_ART = 1.0
GOAL_JAX = 1.0


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


MODELS = {build.__name__: build for build in (dense_net, shallow_cnn)}


def cases(quick):
    """`(name, steps, kind)` of each attack; `--quick` cuts the steps."""
    scale = 10 if quick else 1
    return [
        (f"PGD-{20 // scale}", 20 // scale, "gradient"),
        (f"APGD-CE-{100 // scale}", 100 // scale, "gradient"),
        (f"Square-{200 // scale}", 200 // scale, "queries"),
    ]


def ours(model, name, steps, batch):
    if name.startswith("PGD"):
        return PGD(model, eps=EPS, steps=steps, batch_size=batch, seed=0)
    if name.startswith("APGD"):
        return APGD(model, eps=EPS, steps=steps, batch_size=batch, seed=0)
    return Square(
        model, eps=SQUARE_EPS, n_queries=steps, batch_size=batch, seed=0
    )


def theirs(classifier, name, steps, batch):
    from art.attacks.evasion import AutoProjectedGradientDescent
    from art.attacks.evasion import ProjectedGradientDescent
    from art.attacks.evasion import SquareAttack

    if name.startswith("PGD"):
        return ProjectedGradientDescent(
            classifier, eps=EPS, eps_step=2.5 * EPS / steps, max_iter=steps,
            num_random_init=1, batch_size=batch, verbose=False,
        )
    if name.startswith("APGD"):
        return AutoProjectedGradientDescent(
            classifier, eps=EPS, eps_step=2 * EPS, max_iter=steps,
            nb_random_init=1, batch_size=batch, verbose=False,
        )
    return SquareAttack(
        classifier, norm=np.inf, eps=SQUARE_EPS, max_iter=steps, p_init=0.8,
        nb_restarts=1, batch_size=batch, verbose=False,
    )


def floor(model, x, y, steps, kind, compiler=backends.compile):
    """`steps` compiled passes of the model back to back, ready to time.

    A gradient pass is forward and backward, a query pass forward only;
    each starts from the last one's result, so none can be folded away,
    and nothing else is computed. `compiler(fn, variables)` compiles them.
    """

    def passes(x, y):
        def loss(z):
            return ops.sum(cross_entropy(model(z, training=False), y)), None

        def gradient(z):
            return ops.sign(backends.value_and_grad(loss, z)[2])

        def query(z):
            logits = model(z, training=False)
            return ops.reshape(ops.sign(ops.sum(logits, axis=1)), (-1, 1, 1, 1))

        one = gradient if kind == "gradient" else query
        return ops.fori_loop(0, steps, lambda i, z: x + 1e-3 * one(z), x)

    run = compiler(passes, backends.variables_of(model))
    run(x, y)
    return lambda: run(x, y)


def xla_pass(model, x, y, repeats):
    """One gradient pass in TensorFlow compiled by XLA, as JAX is, in ms."""
    import tensorflow as tf

    def compiler(fn, variables):
        return tf.function(fn, jit_compile=True, autograph=False)

    passes = floor(model, x, y, 10, "gradient", compiler)
    return 1000 * fastest({"xla": passes}, repeats)["xla"] / 10


def seconds(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def fastest(runs, repeats):
    """The fastest time of each run, interleaved.

    Each run keeps its fastest of `repeats`, so that load from other
    processes on a shared machine biases none.
    """
    times = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            times[key].append(seconds(run))
    return {key: min(values) for key, values in times.items()}


def time_ours(model, x, y, case, repeats, copies, extra=None):
    """Times of ours, the floor and `extra` runs; the work done, per case.

    Ours and the floor are each compiled `copies` times and keep their
    fastest copy. On a CPU, TensorFlow's oneDNN convolution gradients run
    at one of two speeds that is fixed when a function is compiled (six
    compiled copies of one floor took 0.53 or 0.83 CPU seconds each, run
    after run), so one copy of each would compare a lucky compile with an
    unlucky one about half the time.
    """
    name, steps, kind = case
    runs, attacks = {}, []
    for copy in range(copies):
        attack = ours(model, name, steps, len(x))
        attack.generate(x, y)  # Traces the graphs once; not timed.
        attacks.append(attack)
        runs[f"ours {copy}"] = lambda attack=attack: attack.generate(x, y)
        runs[f"floor {copy}"] = floor(model, x, y, steps, kind)
    times = fastest({**runs, **(extra or {})}, repeats)
    for key in ("ours", "floor"):
        times[key] = min(times.pop(f"{key} {copy}") for copy in range(copies))
    attack = attacks[0]
    work = len(x)
    if kind == "queries":
        work = int(attack.queries.sum())
        if work != len(x) * (steps + 1):
            raise RuntimeError(
                f"{name}: {len(x) * (steps + 1) - work} queries were saved "
                "by misclassified inputs; lower SQUARE_EPS"
            )
    return times, work


def inputs_and_weights(batch):
    """Each model's weights and batch, from seed 0.

    The batch: the `batch` inputs of the model's largest margins (top logit
    over the next) among 8 times as many uniform draws, so that Square
    misclassifies none at `SQUARE_EPS`.
    """
    keras.utils.set_random_seed(0)
    pool = (
        np.random.default_rng(0)
        .uniform(size=(8 * batch, 28, 28, 1))
        .astype("float32")
    )
    # Every model is built, timed or not, so that each gets the weights it
    # has in a run of all of them.
    found = {}
    for build in MODELS.values():
        model = build()
        logits = np.sort(model.predict(pool, batch_size=batch, verbose=0))
        margins = logits[:, -1] - logits[:, -2]
        x = pool[np.sort(np.argsort(margins)[-batch:])]
        found[model.name] = (model.get_weights(), x)
    return found


def load(build, weights, x):
    """The model with `weights`, and its predictions on `x` as labels."""
    model = build()
    model.set_weights(weights)
    y = np.argmax(model.predict(x, batch_size=len(x), verbose=0), axis=1)
    return model, y.astype("int32")


def jax_child(path, args):
    """Ours on JAX: one JSON line of times and work per model and case."""
    data = np.load(path)
    results = {}
    for build in map(MODELS.get, args.models):
        prefix = f"{build.__name__}/"
        count = sum(key.startswith(prefix) for key in data.files)
        weights = [data[f"{prefix}{i}"] for i in range(count)]
        x = data[f"{build.__name__}:x"]
        model, y = load(build, weights, x)
        for case in cases(args.quick):
            times, work = time_ours(
                model, x, y, case, args.repeats, args.copies
            )
            results[f"{model.name} {case[0]}"] = {**times, "work": work}
    print(json.dumps(results))


def run_jax(inputs, args):
    """`jax_child`'s results, from a child process."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "inputs.npz")
        arrays = {}
        for model, (weights, x) in inputs.items():
            arrays[f"{model}:x"] = x
            arrays.update({f"{model}/{i}": v for i, v in enumerate(weights)})
        np.savez(path, **arrays)
        command = [
            sys.executable, __file__, "--jax-child", path,
            "--batch", str(args.batch), "--repeats", str(args.repeats),
            "--copies", str(args.copies), "--models", *args.models,
        ] + (["--quick"] if args.quick else [])
        result = subprocess.run(
            command, capture_output=True, text=True,
            env={**os.environ, "KERAS_BACKEND": "jax"},
        )
    if result.returncode != 0:
        sys.exit(f"the JAX child process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_tensorflow(build, weights, x, args):
    """Ours on TensorFlow and ART, interleaved: times and work per case.

    Also the model's gradient pass compiled by XLA, in ms.
    """
    from art.estimators.classification import TensorFlowV2Classifier

    model, y = load(build, weights, x)
    classifier = TensorFlowV2Classifier(
        model,
        nb_classes=10,
        input_shape=(28, 28, 1),
        loss_object=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True
        ),
        clip_values=(0.0, 1.0),
    )
    results = {}
    for case in cases(args.quick):
        art = theirs(classifier, case[0], case[1], len(x))
        outputs = {}

        def run_art():
            outputs["x"] = art.generate(x, y)

        times, work = time_ours(
            model, x, y, case, args.repeats, args.copies, {"art": run_art}
        )
        if case[2] == "queries":
            predicted = np.argmax(classifier.predict(outputs["x"]), axis=1)
            if (predicted != y).any():
                raise RuntimeError(
                    f"ART's {case[0]} misclassified inputs, which saves it "
                    "queries; lower SQUARE_EPS"
                )
        results[f"{model.name} {case[0]}"] = {**times, "work": work}
    return results, xla_pass(model, x, y, args.repeats)


def marked(ratio, met):
    """A ratio, starred when it misses its goal."""
    return f"{ratio:.2f}x{' ' if met else '*'}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--copies", type=int, default=None,
        help="compiled copies of each attack and floor, fastest kept "
        "(default 3)",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="batch 8, steps / 10, 1 repeat, 1 copy: checks that the "
        "script runs",
    )
    parser.add_argument(
        "--models", nargs="+", choices=list(MODELS), default=list(MODELS),
        help="the models to time (default: all)",
    )
    parser.add_argument("--jax-child", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    defaults = {"batch": (128, 8), "repeats": (5, 1), "copies": (3, 1)}
    for option, (full, quick) in defaults.items():
        if getattr(args, option) is None:
            setattr(args, option, quick if args.quick else full)
    for option in ("batch", "repeats", "copies"):
        if getattr(args, option) < 1:
            parser.error(
                f"--{option} must be at least 1, got {getattr(args, option)}"
            )
    args.models = list(dict.fromkeys(args.models))  # Each once.
    if args.jax_child:
        jax_child(args.jax_child, args)
        return
    import tensorflow as tf

    inputs = inputs_and_weights(args.batch)
    found = run_jax(inputs, args)
    print(
        f"batch {args.batch}, TensorFlow {tf.__version__}, JAX "
        f"{version('jax')}, Keras {keras.__version__}, on "
        f"{os.cpu_count()} CPU cores; fastest of {args.repeats} interleaved "
        f"runs of {args.copies} compiled "
        f"{'copy' if args.copies == 1 else 'copies'} each (ART: one; JAX in a "
        "child process, before TensorFlow and ART)"
    )
    header = (
        f"{'model':<12} {'attack':<12} {'unit':<8} {'ours TF':>8} "
        f"{'ours JAX':>8} {'ART':>7} {'TF/ART':>7} {'JAX/TF':>7} "
        f"{'pass TF':>8} {'pass JAX':>8} {'TF/floor':>9} {'JAX/floor':>9}"
    )
    print(header)
    print("-" * len(header))
    xla = {}
    for build in map(MODELS.get, args.models):
        weights, x = inputs[build.__name__]
        tf_found, xla[build.__name__] = time_tensorflow(build, weights, x, args)
        for key, tf_row in tf_found.items():
            print(row(key, tf_row, found[key], cases(args.quick)))
    print(
        f"unit: inputs (img/s) or queries (query/s) per second; pass: one "
        f"forward+backward pass in ms (Square: forward only); floor: steps "
        f"x one pass. Goals: TF/ART >= {GOAL_ART:g}, JAX/TF >= "
        f"{GOAL_JAX:g}, ours/floor <= {GOAL_FLOOR:g}; * misses its goal."
    )
    print(
        "forward+backward pass in TensorFlow compiled by XLA "
        "(jit_compile=True), as JAX compiles: "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in xla.items())
    )


def row(key, tf_row, jax_row, all_cases):
    model, name = key.split(" ")
    steps, kind = next((s, k) for n, s, k in all_cases if n == name)
    unit = "query/s" if kind == "queries" else "img/s"
    tf_speed = tf_row["work"] / tf_row["ours"]
    jax_speed = jax_row["work"] / jax_row["ours"]
    art_speed = tf_row["work"] / tf_row["art"]
    tf_floor = tf_row["ours"] / tf_row["floor"]
    jax_floor = jax_row["ours"] / jax_row["floor"]
    return (
        f"{model:<12} {name:<12} {unit:<8} {tf_speed:>8.0f} "
        f"{jax_speed:>8.0f} {art_speed:>7.0f} "
        f"{marked(tf_speed / art_speed, tf_speed >= GOAL_ART * art_speed):>7} "
        f"{marked(jax_speed / tf_speed, jax_speed >= GOAL_JAX * tf_speed):>7} "
        f"{1000 * tf_row['floor'] / steps:>8.2f} "
        f"{1000 * jax_row['floor'] / steps:>8.2f} "
        f"{marked(tf_floor, tf_floor <= GOAL_FLOOR):>9} "
        f"{marked(jax_floor, jax_floor <= GOAL_FLOOR):>9}"
    )


if __name__ == "__main__":
    main()
