"""Robust training with and without learned caps: does a D-ReLU add anything?

Six ways to train one network, evaluated alike: plain training, PGD-AT,
TRADES (beta 6), D-ReLU + PGD-AT, D-ReLU + TRADES, and D-ReLU alone for
reference. The D-ReLU sits at the dense head (the D-ReLU paper's Figure
10; the other methods have a ReLU there), its caps start calibrated on
the training images (`keras_drelu.calibrate_caps`, the 0.99 quantile of
each unit's inputs) and learn under the penalty `lam * sum(m ** 2)`; the
inner attack of its adversarial training passes straight through the caps
(`inner_gradient="bpda"`) while the update follows the exact gradient.
One setting per run:

- `mnist`: MNIST at L-inf eps 0.3, the D-ReLU paper's shallow CNN;
- `cifar10`: the CIFAR-10 subset at eps 8/255, the small CNN of the
  CIFAR-10 experiments;
- `pretrained`: MobileNetV2 pretrained here on half of the CIFAR-10
  classes (`experiments/pretrained_backbone.py`), retrofitted with a dense
  head on the other half at eps 8/255 the way `retrofit` does it: a probe
  with the backbone frozen, then fine-tuning, in the phases of
  `retrofit.run.PHASES`.

Every model is attacked with the adaptive suite (APGD-CE, APGD-T, FAB-T,
Square, BPDA, transfer from the uncapped twin), masking checks on, and the
per-image worst case is the score. The question: does D-ReLU + TRADES beat
TRADES by at least 2 points of worst-case accuracy, at clean accuracy
within 1 point? The answer is a 95% t interval over the seeds (paired: the
same seed and test images for both), with a bootstrap over the test
images beside it; a lambda sweep of D-ReLU + TRADES goes with it.
`experiments/robust_retrofit_summary.py` runs the significance tests over
the three settings.

    python experiments/robust_retrofit.py --help
    python experiments/robust_retrofit.py --setting mnist --quick --out /tmp/rr
    python experiments/robust_retrofit.py --setting mnist \\
        --out docs/results/robust_retrofit_mnist

Every reduction (images, epochs, attack steps, queries) is written in the
table's header. Finished rows are kept in `runs/robust_retrofit/` (a rerun
with the same settings reuses them).
"""

import dataclasses
import json
import math
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

import pretrained_backbone  # noqa: E402
from common import arguments  # noqa: E402
from common import data  # noqa: E402
from common import results  # noqa: E402
from common.data import load  # noqa: E402
from common.evaluation import cap_summary  # noqa: E402
from common.evaluation import evaluate  # noqa: E402
from common.networks import cifar10_cnn  # noqa: E402
from common.results import percent  # noqa: E402
from drelu_mnist import ARCHS as MNIST_ARCHS  # noqa: E402
from keras_drelu import calibrate_caps  # noqa: E402
from keras_drelu.layers import ACTIVATIONS  # noqa: E402
from keras_drelu.training import RECIPES  # noqa: E402
from keras_drelu.training import contains_caps  # noqa: E402
from keras_drelu.training import get_recipe  # noqa: E402
from keras_drelu.training import train  # noqa: E402
from retrofit.placements import backbone_layer  # noqa: E402
from retrofit.placements import build_retrofit_model  # noqa: E402
from retrofit.run import CALIBRATION_EXAMPLES  # noqa: E402
from retrofit.run import CALIBRATION_QUANTILE  # noqa: E402
from retrofit.run import PHASES  # noqa: E402
from retrofit.run import RAMP  # noqa: E402
from retrofit.run import set_backbone_trainable  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Method:
    """One way to train: the activation at the head and the recipe.

    Args:
        activation: A name of `keras_drelu.ACTIVATIONS`.
        recipe: A name of `keras_drelu.training.RECIPES`.
        beta: TRADES' beta, for the recipes that take one.
    """

    activation: str
    recipe: str
    beta: float = None


METHODS = {
    "plain": Method("relu", "standard"),
    "PGD-AT": Method("relu", "pgd-at"),
    "TRADES": Method("relu", "trades", 6.0),
    "D-ReLU + PGD-AT": Method("drelu", "pgd-at"),
    "D-ReLU + TRADES": Method("drelu", "trades", 6.0),
    "D-ReLU alone": Method("drelu", "drelu"),
}
# The question: does the first beat the second by MARGIN points of worst
# case, at clean accuracy within CLEAN_TOLERANCE points?
QUESTION = ("D-ReLU + TRADES", "TRADES")
MARGIN = 2.0
CLEAN_TOLERANCE = 1.0
CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 2000
# The method whose cap penalty the sweep varies.
SWEPT = "D-ReLU + TRADES"


def _mnist_cnn(activation, args, lam, weights):
    return MNIST_ARCHS["cnn"](activation, args.units, _settings(activation,
                                                                lam))


def _cifar10_cnn(activation, args, lam, weights):
    return cifar10_cnn(activation, units=args.units,
                       **_settings(activation, lam))


def _pretrained(activation, args, lam, weights):
    return build_retrofit_model(
        pretrained_backbone.BACKBONE, (32, 32, 3), 5, placement="head",
        activation=activation, units=args.units, weights=str(weights),
        **_settings(activation, lam),
    )


def _settings(activation, lam):
    """The cap penalty, for the activations that take one."""
    return {"lam": lam} if "lam" in ACTIVATIONS[activation].settings else {}


@dataclasses.dataclass(frozen=True)
class Setting:
    """A data set, its radius and its network.

    Args:
        description: What is trained, in words.
        dataset: A key of `common.data.DATASETS`, the images' source.
        eps: The L-inf radius of training and evaluation.
        eps_text: The radius as the tables write it.
        build: `build(activation, args, lam, weights)` -> the network.
        pretrained: Whether the network starts from the backbone of
            `experiments/pretrained_backbone.py` (fine-tuned on its second
            half of the classes) with a probe first.
        defaults: Argument -> this setting's default.
        reference: Argument -> the full-scale value the header measures the
            run against.
    """

    description: str
    dataset: str
    eps: float
    eps_text: str
    build: object
    pretrained: bool
    defaults: dict
    reference: dict


# AutoAttack's budgets, against which every setting's evaluation is reduced.
AUTOATTACK = dict(apgd_steps=100, target_classes=9, square_queries=5000)
SETTINGS = {
    "mnist": Setting(
        "the D-ReLU paper's shallow CNN (two valid 3x3 convolutions of 32 "
        "and 64 filters with max pooling, dense 128 -> activation -> "
        "logits), trained from scratch",
        "mnist", 0.3, "0.3", _mnist_cnn, False,
        defaults=dict(train_size=8000, epochs=5, batch_size=128,
                      train_attack_steps=10, eps_ramp=2.0, eval_images=500,
                      lam=1e-3),
        reference=dict(train_size=60000, epochs=100, train_attack_steps=40,
                       eval_images=10000, **AUTOATTACK),
    ),
    "cifar10": Setting(
        "the small CNN of the CIFAR-10 experiments (three same-padded 3x3 "
        "convolutions of 32, 64 and 128 filters with max pooling, dense "
        "128 -> activation -> logits), trained from scratch",
        "cifar10", 8 / 255, "8/255", _cifar10_cnn, False,
        defaults=dict(train_size=6000, epochs=6, batch_size=128,
                      train_attack_steps=5, eps_ramp=1.0, eval_images=500,
                      lam=1e-3),
        reference=dict(train_size=20000, epochs=76, train_attack_steps=10,
                       eval_images=1000, **AUTOATTACK),
    ),
    "pretrained": Setting(
        "MobileNetV2 pretrained here on the first half of the CIFAR-10 "
        "classes (experiments/pretrained_backbone.py), with a dense head of "
        "128 units on the second half (5 classes): a probe with the backbone "
        "frozen, then fine-tuning",
        "cifar10", 8 / 255, "8/255", _pretrained, True,
        defaults=dict(train_size=3000, epochs=3, freeze_epochs=1,
                      batch_size=64, train_attack_steps=3, eps_ramp=1.0,
                      eval_images=200, lam=1e-3),
        reference=dict(train_size=9800, train_attack_steps=10,
                       eval_images=515, **AUTOATTACK),
    ),
}
WORDING = dict(
    train_size="{ours} training images (all: {paper})",
    epochs="{ours} epochs (TRADES paper: {paper})",
    train_attack_steps="{ours} attack steps in training (reference: "
    "{paper})",
    eval_images="{ours} test images (all: {paper})",
)

DATASET = None
# `None`: the setting's default (`Setting.defaults`).
DEFAULTS = dict(train_size=None, epochs=None, batch_size=None, units=128,
                lam=None, train_attack_steps=None, eval_images=None,
                apgd_steps=20, target_classes=3, square_queries=300, seed=0)
QUICK = dict(train_size=256, epochs=1, freeze_epochs=1, batch_size=64,
             train_attack_steps=1, eps_ramp=0.5, eval_images=12, apgd_steps=2,
             target_classes=2, square_queries=5, seeds=[0, 1],
             methods=["TRADES", "D-ReLU + TRADES"],
             lambdas=[0.1], pretrain_epochs=1, pretrain_size=200)
OPTIONS = {
    "--setting": dict(choices=list(SETTINGS), required=True,
                      help="data set and network"),
    "--data": dict(type=pathlib.Path, default=None,
                   help=".npz file of the setting's data set (default: "
                   "../shared/data)"),
    "--freeze-epochs": dict(type=arguments.non_negative_int, default=None,
                            help="epochs with the backbone frozen before "
                            "--epochs, for the pretrained setting"),
    "--eps-ramp": dict(type=arguments.non_negative_float, default=None,
                       help="epochs over which the training radius grows "
                       "to eps, in the phases that ramp"),
    "--methods": dict(nargs="+", choices=list(METHODS),
                      action=arguments.Distinct, default=list(METHODS)),
    "--seeds": dict(nargs="+", type=arguments.non_negative_int,
                    action=arguments.Distinct, default=[0, 1, 2]),
    "--lambdas": dict(nargs="+", type=arguments.non_negative_float,
                      action=arguments.Distinct, default=[0.0, 0.1, 10.0],
                      help=f"cap penalties of the {SWEPT} sweep, besides "
                      "--lam"),
    "--sweep-seeds": dict(nargs="+", type=arguments.non_negative_int,
                          action=arguments.Distinct, default=[0]),
    "--pretrain-epochs": dict(type=arguments.positive_int, default=30,
                              help="as in pretrained_backbone.py"),
    "--pretrain-size": dict(type=arguments.positive_int, default=None,
                            help="as in pretrained_backbone.py"),
    "--runs": dict(type=pathlib.Path, default=data.REPO / "runs",
                   help="folder of the pretrained backbone and the kept "
                   "rows"),
}


def resolve(args):
    """Fills the arguments left at `None` with the setting's defaults."""
    setting = SETTINGS[args.setting]
    for key, value in setting.defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.freeze_epochs is None or not setting.pretrained:
        args.freeze_epochs = 0
    return setting


def _pretraining_args(args):
    """The arguments of `pretrained_backbone.pretrain`."""
    return dict(data=data.default_path("cifar10"),
                runs=args.runs / "pretrained_backbone",
                pretrain_epochs=args.pretrain_epochs,
                pretrain_size=args.pretrain_size, batch_size=64,
                units=128, seed=0)


def prepare_data(args, setting):
    """Sets `args.data`; for the pretrained setting, pretrains the backbone
    (or reuses it) and returns its weights file and record."""
    if not setting.pretrained:
        if args.data is None:
            args.data = data.default_path(setting.dataset)
        return None, None
    import argparse

    pretraining = argparse.Namespace(**_pretraining_args(args))
    if args.data is not None:
        pretraining.data = args.data
    weights, record = pretrained_backbone.pretrain(pretraining)
    args.data = pretraining.runs / "second-half.npz"
    return weights, record


def runs_to_do(args):
    """`(method, lam, seed)` of every row: the methods per seed, then the
    sweep. `lam` is `None` for a method without caps."""
    for seed in args.seeds:
        for method in args.methods:
            yield method, _lam(method, args.lam), seed
    if SWEPT in args.methods:
        for lam in args.lambdas:
            if lam != args.lam:
                for seed in args.sweep_seeds:
                    yield SWEPT, lam, seed


def _lam(method, lam):
    activation = METHODS[method].activation
    return lam if "lam" in ACTIVATIONS[activation].settings else None


def _phase_epochs(phase, args):
    return getattr(args, phase.epochs, 0) or 0


def _recipe_arguments(method, setting, args, ramps):
    """The arguments of `train` the method's recipe takes."""
    recipe = RECIPES[method.recipe]
    given = dict(eps=setting.eps, attack_steps=args.train_attack_steps,
                 beta=method.beta)
    chosen = {key: value for key, value in given.items()
              if key in recipe.arguments and value is not None}
    if ramps and RAMP in recipe.arguments and args.eps_ramp:
        chosen["eps_ramp"] = args.eps_ramp
    return chosen


def train_row(method_name, lam, seed, setting, splits, calibration, args,
              weights):
    """Builds, calibrates and trains one model phase by phase."""
    method = METHODS[method_name]
    keras.utils.set_random_seed(seed)
    model = setting.build(method.activation, args, lam, weights)
    if contains_caps(model):
        calibrate_caps(model, calibration, quantile=CALIBRATION_QUANTILE)
    epochs = {}
    for phase in PHASES:
        count = _phase_epochs(phase, args)
        if not count:
            continue
        if setting.pretrained:
            set_backbone_trainable(model, phase.backbone_trainable, True)
        recipe = get_recipe("auto", model) if phase.natural else RECIPES[
            method.recipe]
        result = train(
            model, splits.train, splits.validation, recipe=recipe.name,
            epochs=count, verbose=0,
            **({} if phase.natural else
               _recipe_arguments(method, setting, args, phase.ramps)),
        )
        model = result.model
        epochs[phase.name] = len(result.epochs)
    if setting.pretrained:
        backbone_layer(model).trainable = True
    return model, epochs


def _mean_cap(row):
    """The mean cap of a row's model, over its capped layers' units."""
    return float(np.mean([layer["mean"] for layer in row["caps"].values()]))


# The masking checks' measurements kept with each row.
CHECKS = ("zero_gradient_share", "large_eps_accuracy", "output_variation",
          "output_type")


def _bits(flags):
    return "".join("1" if flag else "0" for flag in flags)


def evaluate_row(model, method_name, seed, setting, x, y, args):
    report = evaluate(model, x, y, args, eps=setting.eps, suite="adaptive",
                      seed=seed, model_name=method_name)
    correct = model.predict(x, batch_size=500, verbose=0).argmax(axis=1) == y
    return dict(
        clean=report.clean_accuracy, worst_case=report.worst_case_accuracy,
        accuracy=dict(report.accuracy),
        flags=sorted({flag.code for flag in report.flags}),
        correct=_bits(correct), robust=_bits(report.robust),
        timings=dict(report.timings),
        checks={key: getattr(report, key) for key in CHECKS},
    )


class RowStore:
    """The finished rows of a setting, kept on disk, so that a rerun with
    the same settings (`signature`) skips them."""

    def __init__(self, path, signature):
        self.path = path
        self.signature = signature
        self.rows = {}
        if path.is_file():
            stored = json.loads(path.read_text())
            if stored["signature"] == signature:
                self.rows = {self.key(*row["key"]): row
                             for row in stored["rows"]}

    @staticmethod
    def key(method, lam, seed):
        return f"{method}|{lam}|{seed}"

    def get(self, method, lam, seed):
        return self.rows.get(self.key(method, lam, seed))

    def add(self, row):
        self.rows[self.key(*row["key"])] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_text(json.dumps(dict(signature=self.signature,
                                             rows=list(self.rows.values()))))
        os.replace(temporary, self.path)


# Arguments that choose which rows run, not how each is made.
_SELECTION = ("out", "command", "quick", "methods", "seeds", "lambdas",
              "sweep_seeds", "runs")


def signature(args):
    """The settings a row depends on."""
    return {key: str(value) for key, value in sorted(vars(args).items())
            if key not in _SELECTION}


def run(args):
    setting = resolve(args)
    weights, pretraining = prepare_data(args, setting)
    splits, x, y = load(args, validation_split=0.1)
    calibration = np.concatenate([
        images for images, _ in splits.train.unbatch()
        .take(CALIBRATION_EXAMPLES).batch(512).as_numpy_iterator()])
    store = RowStore(args.runs / "robust_retrofit" / f"{args.setting}.json",
                     signature(args))
    start = time.perf_counter()
    rows = []
    for method, lam, seed in runs_to_do(args):
        row = store.get(method, lam, seed)
        if row is None:
            began = time.perf_counter()
            model, epochs = train_row(method, lam, seed, setting, splits,
                                      calibration, args, weights)
            trained = time.perf_counter()
            row = dict(key=[method, lam, seed], method=method, lam=lam,
                       seed=seed, epochs=epochs, caps=cap_summary(model),
                       **evaluate_row(model, method, seed, setting, x, y,
                                      args),
                       train_seconds=trained - began,
                       eval_seconds=time.perf_counter() - trained)
            store.add(row)
            keras.backend.clear_session()
        rows.append(row)
        print(f"{args.setting} | {label(method, lam)} | seed {seed} | clean "
              f"{row['clean']:.3f} | worst {row['worst_case']:.3f} | "
              f"{row['train_seconds'] + row['eval_seconds']:.0f} s",
              flush=True)
    return dict(setting=args.setting, rows=rows, pretraining=pretraining,
                wall_seconds=time.perf_counter() - start)


def _row_minutes(rows):
    """Minutes the rows took to train and evaluate, summed."""
    return sum(row["train_seconds"] + row["eval_seconds"]
               for row in rows) / 60


def label(method, lam):
    return method if lam is None else f"{method} (lambda {lam:g})"


def main_rows(outcome, args):
    """Method -> its rows at the main lambda, in seed order."""
    rows = {}
    for row in outcome["rows"]:
        if row["lam"] == _lam(row["method"], args.lam) and (
                row["seed"] in args.seeds):
            rows.setdefault(row["method"], []).append(row)
    return {m: sorted(r, key=lambda row: row["seed"]) for m, r in
            rows.items()}


def _values(rows, key):
    return 100 * np.array([row[key] for row in rows])


def _cell(values):
    if len(values) < 2:
        return f"{values[0]:.1f}"
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"


def t_interval(differences, confidence=CONFIDENCE):
    """Mean and `confidence` t interval of paired differences.

    Example:

    >>> mean, low, high = t_interval(np.array([1.0, 2.0, 3.0]))
    >>> mean, round(low, 2), round(high, 2)
    (2.0, -0.48, 4.48)
    """
    n = len(differences)
    mean = float(np.mean(differences))
    if n < 2:
        return mean, float("nan"), float("nan")
    half = scipy_stats.t.ppf((1 + confidence) / 2, n - 1) * float(
        np.std(differences, ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def bootstrap_interval(first, second, seed=0, confidence=CONFIDENCE,
                       samples=BOOTSTRAP_SAMPLES):
    """Percentile interval of the mean paired difference over test images.

    `first` and `second` are `(seeds, images)` 0/1 arrays of the two
    methods on the same images; each resample draws images with
    replacement, the same for every seed, so it measures the evaluation's
    noise given these trained models, not the training's.
    """
    rng = np.random.default_rng(seed)
    difference = 100 * (first - second).astype(float)
    picks = rng.integers(0, difference.shape[1],
                         size=(samples, difference.shape[1]))
    means = difference[:, picks].mean(axis=(0, 2))
    tail = (1 - confidence) / 2
    return (float(np.quantile(means, tail)),
            float(np.quantile(means, 1 - tail)))


def _array(rows, key):
    return np.array([[int(bit) for bit in row[key]] for row in rows])


def question(outcome, args):
    """The paired comparison of `QUESTION` (`None` if a side is missing)."""
    rows = main_rows(outcome, args)
    first, second = QUESTION
    if first not in rows or second not in rows:
        return None
    seeds = sorted({r["seed"] for r in rows[first]}
                   & {r["seed"] for r in rows[second]})
    a = [r for r in rows[first] if r["seed"] in seeds]
    b = [r for r in rows[second] if r["seed"] in seeds]
    answer = {}
    for key, bits in (("clean", "correct"), ("worst_case", "robust")):
        differences = _values(a, key) - _values(b, key)
        mean, low, high = t_interval(differences)
        answer[key] = dict(
            differences=differences.tolist(), mean=mean, low=low, high=high,
            bootstrap=bootstrap_interval(_array(a, bits), _array(b, bits)),
        )
    worst, clean = answer["worst_case"], answer["clean"]
    if worst["low"] >= MARGIN and clean["low"] >= -CLEAN_TOLERANCE:
        verdict = "yes"
    elif worst["high"] < MARGIN or clean["high"] < -CLEAN_TOLERANCE:
        verdict = "no"
    else:
        verdict = "not decided"
    answer.update(seeds=seeds, verdict=verdict)
    return answer


def description(outcome, args):
    setting = SETTINGS[args.setting]
    lines = [
        f"Setting `{args.setting}`: {setting.description}; L-inf eps "
        f"{setting.eps_text}. {args.train_size} training images (10% held "
        f"out for early stopping), batch {args.batch_size}, Adam 1e-3 with "
        "the paper's plateau halving and early stopping, "
        + (f"{args.freeze_epochs} probe epoch(s) with the backbone frozen "
           "then " if args.freeze_epochs else "")
        + f"{args.epochs} epoch(s), the same for every method. PGD-AT and "
        f"TRADES (beta 6) attack with {args.train_attack_steps} PGD steps; "
        f"their radius ramps from 0 over the first {args.eps_ramp:g} "
        "epoch(s) of the phases that ramp (`retrofit.run.PHASES`). D-ReLU: "
        f"caps calibrated at the {CALIBRATION_QUANTILE:g} quantile of "
        f"{CALIBRATION_EXAMPLES} training images, lambda {args.lam:g} "
        "(the sweep varies it), straight-through inner attack. Seeds "
        f"{', '.join(map(str, args.seeds))} (initial weights and attacks; "
        "the data subset is fixed).",
        "",
        f"Evaluated on the first {args.eval_images} test images"
        + (" of the second half" if setting.pretrained else "")
        + " with the adaptive suite, cascade: APGD-CE and APGD-T "
        f"({args.target_classes} target classes) with {args.apgd_steps} "
        f"steps, FAB-T ({args.target_classes} targets, {args.apgd_steps} "
        f"steps), Square with {args.square_queries} queries, BPDA(APGD-CE), "
        "BPDA(APGD-T), Transfer(APGD-CE); masking checks on. Accuracy in "
        "percent, mean ± standard deviation over seeds; **worst case** per "
        "image over every attack. Training and evaluation took "
        f"{_row_minutes(outcome['rows']):.0f} min on 2 CPU cores shared with "
        "other work, the sum of the rows' own times (a row kept from an "
        "earlier run with the same settings counts the time it took then).",
    ]
    if outcome["pretraining"]:
        record = outcome["pretraining"]
        lines += ["", "Pretraining (first half, natural): test accuracy "
                  f"{percent(record['test_accuracy'])}% after "
                  f"{record['epochs_trained']} epochs."]
    return lines


def main_table(outcome, args):
    rows = main_rows(outcome, args)
    body = []
    for method in args.methods:
        if method not in rows:
            continue
        chosen = rows[method]
        flags = sorted({f for row in chosen for f in row["flags"]})
        seconds = np.mean([row["train_seconds"] for row in chosen])
        body.append([
            method, _cell(_values(chosen, "clean")),
            _cell(100 * np.array([row["accuracy"]["APGD-CE"]
                                  for row in chosen])),
            f"**{_cell(_values(chosen, 'worst_case'))}**",
            f"{np.mean([_mean_cap(row) for row in chosen]):.3g}"
            if chosen[0]["caps"] else "-",
            ", ".join(flags) or "-", f"{seconds:.0f}",
        ])
    return ["## Methods", ""] + results.markdown_table(
        ["Method", "Clean", "APGD-CE", "**Worst case**", "Mean cap",
         "Flags", "Train s"], body)


def question_table(answer):
    first, second = QUESTION
    lines = ["", f"## {first} minus {second} (paired by seed, points)", ""]
    body = []
    for key, name, needed in (("clean", "Clean", -CLEAN_TOLERANCE),
                              ("worst_case", "Worst case", MARGIN)):
        part = answer[key]
        body.append([
            name, ", ".join(f"{d:+.1f}" for d in part["differences"]),
            f"{part['mean']:+.1f}", _interval(part["low"], part["high"]),
            _interval(*part["bootstrap"]), f">= {needed:+.1f}",
        ])
    return lines + results.markdown_table(
        ["Accuracy", "Per seed", "Mean",
         f"95% t interval over {len(answer['seeds'])} seeds",
         "95% bootstrap over test images", "Asked"], body)


def _interval(low, high):
    return f"[{low:+.1f}, {high:+.1f}]"


def sweep_rows(outcome):
    """Lambda -> rows of the swept method, over every seed."""
    rows = {}
    for row in outcome["rows"]:
        if row["method"] == SWEPT:
            rows.setdefault(row["lam"], []).append(row)
    return dict(sorted(rows.items()))


def sweep_table(outcome):
    rows = sweep_rows(outcome)
    if len(rows) < 2:
        return []
    body = []
    for lam, chosen in rows.items():
        seeds = [row for row in chosen if row["seed"] == min(
            r["seed"] for r in chosen)]
        row = seeds[0]
        body.append([f"{lam:g}", str(row["seed"]), f"{_mean_cap(row):.3g}",
                     percent(row["clean"]), percent(row["worst_case"]),
                     ", ".join(row["flags"]) or "-"])
    return ["", f"## Lambda sweep of {SWEPT} (one seed)", ""] + (
        results.markdown_table(["lambda", "Seed", "Mean cap", "Clean",
                                "Worst case", "Flags"], body))


def tables(outcome, args):
    lines = main_table(outcome, args)
    answer = question(outcome, args)
    if answer is not None:
        lines += question_table(answer)
    return lines + sweep_table(outcome)


def reading(outcome, args):
    """Facts read off the numbers, each quoted from the tables."""
    rows = main_rows(outcome, args)
    worst = {m: _values(r, "worst_case").mean() for m, r in rows.items()}
    clean = {m: _values(r, "clean").mean() for m, r in rows.items()}
    lines = []
    best = max(worst, key=worst.get)
    lines.append(f"- Highest worst case: {best} ({worst[best]:.1f}%, clean "
                 f"{clean[best]:.1f}%).")
    for capped, plain in (("D-ReLU alone", "plain"),
                          ("D-ReLU + PGD-AT", "PGD-AT"),
                          ("D-ReLU + TRADES", "TRADES")):
        if capped in worst and plain in worst:
            lines.append(
                f"- {capped}: worst case {worst[capped]:.1f}%, clean "
                f"{clean[capped]:.1f}% ({plain}: {worst[plain]:.1f}% and "
                f"{clean[plain]:.1f}%).")
    answer = question(outcome, args)
    if answer is not None:
        first, second = QUESTION
        part, cleaned = answer["worst_case"], answer["clean"]
        lines.append(
            f"- Does {first} beat {second} by at least {MARGIN:.1f} points of "
            f"worst case at clean accuracy within {CLEAN_TOLERANCE:.1f} "
            f"point? **{answer['verdict'].capitalize()}**: worst case "
            f"{part['mean']:+.1f} points, 95% t interval over the "
            f"{len(answer['seeds'])} paired seeds "
            f"{_interval(part['low'], part['high'])}; clean "
            f"{cleaned['mean']:+.1f} points "
            f"{_interval(cleaned['low'], cleaned['high'])}. The bootstrap "
            "over test images, which holds the trained models fixed, gives "
            f"{_interval(*part['bootstrap'])} for the worst case.")
    sweep = sweep_rows(outcome)
    if len(sweep) > 1:
        first_seed = {lam: min(r, key=lambda row: row["seed"])
                      for lam, r in sweep.items()}
        top = max(first_seed, key=lambda lam: first_seed[lam]["worst_case"])
        lines.append(
            f"- Lambda sweep of {SWEPT}: the highest worst case is at lambda "
            f"{top:g} ({percent(first_seed[top]['worst_case'])}%, clean "
            f"{percent(first_seed[top]['clean'])}%, mean cap "
            f"{_mean_cap(first_seed[top]):.3g}).")
    flagged = {m: sorted({f for row in r for f in row["flags"]})
               for m, r in rows.items()}
    lines.append("- Evaluation flags: " + ("; ".join(
        f"{m}: {', '.join(f)}" for m, f in flagged.items() if f) or "none")
        + ".")
    return lines


def plot_methods(outcome, args, path):
    rows = main_rows(outcome, args)
    methods = [m for m in args.methods if m in rows]
    figure, axes = results.panels(1, size=(8, 4))
    ax = axes[0][0]
    width = 0.38
    for j, (key, name) in enumerate((("clean", "clean"),
                                     ("worst_case", "worst case"))):
        values = [_values(rows[m], key) for m in methods]
        ax.bar(np.arange(len(methods)) + (j - 0.5) * width,
               [v.mean() for v in values], width,
               yerr=[v.std(ddof=1) if len(v) > 1 else 0 for v in values],
               capsize=3, label=name)
    ax.set_xticks(range(len(methods)), methods, rotation=20, fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{args.setting}, eps {SETTINGS[args.setting].eps_text}")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    results.save(figure, path)


def plot_sweep(outcome, path):
    sweep = sweep_rows(outcome)
    figure, axes = results.panels(1)
    ax = axes[0][0]
    lams = list(sweep)
    positive = [lam for lam in lams if lam > 0]
    zero_at = min(positive) / 10 if positive else 1.0
    xs = [lam or zero_at for lam in lams]
    for key, name in (("clean", "clean"), ("worst_case", "worst case")):
        means = [100 * np.mean([row[key] for row in sweep[lam]])
                 for lam in lams]
        ax.plot(xs, means, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xticks(xs, [f"{lam:g}" for lam in lams])
    ax.set_xlabel("lambda")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{SWEPT}: lambda sweep")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    results.save(figure, path)


def write(outcome, args):
    setting = SETTINGS[args.setting]
    figures = {"methods.png": lambda path: plot_methods(outcome, args, path)}
    if len(sweep_rows(outcome)) > 1:
        figures["lambda_sweep.png"] = lambda path: plot_sweep(outcome, path)
    return results.write(
        args,
        title=f"Robust training with and without learned caps: "
        f"{args.setting}, eps {setting.eps_text}",
        description=description(outcome, args),
        reduced=arguments.reduced(args, setting.reference, WORDING),
        tables=tables(outcome, args),
        reading=reading(outcome, args),
        results=dict(outcome, question=question(outcome, args),
                     methods={name: dataclasses.asdict(method)
                              for name, method in METHODS.items()}),
        figures=figures,
    )


if __name__ == "__main__":
    results.main(sys.modules[__name__])
