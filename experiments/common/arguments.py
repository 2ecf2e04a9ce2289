"""The command-line arguments of the experiments, in one table.

Each experiment names the arguments of `ARGUMENTS` it takes with its own
defaults (the paper's settings where the paper gives them), adds the few
that are its own, and gives its `--quick` preset as data: a tiny run with
cut budgets (fewer images, steps and queries), never with the masking
checks off. `ARGUMENTS` also says how the header of a table words a value
that differs from the paper's (`reduced`).
"""

import argparse
import pathlib
import shlex
import sys

from common import data
from keras_drelu.layers import ACTIVATIONS
from retrofit.placements import PLACEMENTS

RESULTS = data.REPO / "docs" / "results"


def model_spec(text):
    """`ACTIVATION:PLACEMENT`, as a command-line argument, to a pair.

    Example:

    >>> model_spec("drelu:input")
    ('drelu', 'input')
    """
    activation, _, placement = text.partition(":")
    if activation not in ACTIVATIONS or placement not in PLACEMENTS:
        raise argparse.ArgumentTypeError(
            f"should be ACTIVATION:PLACEMENT with ACTIVATION in "
            f"{sorted(ACTIVATIONS)} and PLACEMENT in {sorted(PLACEMENTS)}. "
            f"Received: {text!r}"
        )
    return activation, placement


def _number(convert, low, inclusive, what):
    """An argparse `type`: `convert(text)`, at least `low`, else an error."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(
                f"should be {what}. Received: {text!r}"
            )
        return value

    return parse


positive_int = _number(int, 1, True, "an integer >= 1")
non_negative_int = _number(int, 0, True, "an integer >= 0")
positive_float = _number(float, 0.0, False, "a number > 0")
non_negative_float = _number(float, 0.0, True, "a number >= 0")


class Distinct(argparse.Action):
    """Stores a list of values, refusing repeated ones (`nargs="+"`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if len(set(values)) != len(values):
            parser.error(f"{option_string} should not repeat a value. "
                         f"Received: {values}")
        setattr(namespace, self.dest, values)


# name -> argparse keywords, plus `reduced`: how a table's header says that
# the value differs from the reference (`{ours}`, `{paper}`).
ARGUMENTS = {
    "seed": dict(type=non_negative_int,
                 help="seed of the data, the initial weights and attacks"),
    "train_size": dict(
        type=positive_int,
        help="training images (a random subset); all if unset",
        reduced="{ours} training images (paper: {paper})",
    ),
    "epochs": dict(
        type=positive_int,
        help="maximum epochs (early stopping on the validation loss)",
        reduced="at most {ours} epochs (paper: {paper})",
    ),
    "natural_epochs": dict(
        type=positive_int,
        help="maximum epochs of natural training (early stopping)",
        reduced="at most {ours} natural epochs (paper: {paper})",
    ),
    "adv_epochs": dict(
        type=positive_int,
        help="epochs of adversarial retraining (AT, TRADES)",
        reduced="{ours} adversarial epochs (paper: {paper})",
    ),
    "batch_size": dict(type=positive_int, help="training batch size",
                       reduced="batch {ours} (paper: {paper})"),
    "units": dict(type=positive_int,
                  help="width of the dense layer before the output"),
    "lam": dict(type=non_negative_float,
                help="D-ReLU cap penalty lambda (0: no penalty)"),
    "initial_max_value": dict(
        type=positive_float,
        help="initial D-ReLU cap",
        reduced="initial cap {ours} (paper: {paper})",
    ),
    "max_value": dict(type=positive_float, help="S-ReLU cap"),
    "models": dict(
        type=model_spec, nargs="+", action=Distinct,
        help="networks as ACTIVATION:PLACEMENT; the first is the reference "
        "the reading compares the others with",
    ),
    "eps": dict(type=positive_float, help="L-inf radius of the attacks"),
    "eval_images": dict(
        type=positive_int,
        help="first N test images evaluated",
        reduced="{ours} test images (paper: {paper})",
    ),
    "pgd_steps": dict(type=positive_int,
                      help="iterations of the evaluation's PGD"),
    "step_size": dict(type=positive_float,
                      help="step of PGD (evaluation and PGD-AT)"),
    "train_attack_steps": dict(type=positive_int,
                               help="PGD steps of adversarial training"),
    "apgd_steps": dict(
        type=positive_int,
        help="steps of APGD and FAB-T (AutoAttack: 100)",
        reduced="APGD and FAB-T with {ours} steps (AutoAttack: {paper})",
    ),
    "target_classes": dict(
        type=positive_int,
        help="target classes of APGD-T (AutoAttack: 9)",
        reduced="APGD-T on {ours} target classes (AutoAttack: {paper})",
    ),
    "square_queries": dict(
        type=positive_int,
        help="queries of Square (AutoAttack: 5000)",
        reduced="Square with {ours} queries (AutoAttack: {paper})",
    ),
    "cw_eps": dict(type=positive_float, help="L2 radius of CW-L2"),
    "cw_iterations": dict(
        type=positive_int, help="iterations of CW-L2",
        reduced="CW-L2 with {ours} iterations (paper: {paper})",
    ),
    "cw_binary_steps": dict(
        type=positive_int, help="binary-search steps of CW-L2",
        reduced="{ours} CW-L2 binary-search steps (paper: {paper})",
    ),
    "cw_learning_rate": dict(type=positive_float,
                             help="learning rate of CW-L2"),
    "cw_initial_const": dict(type=positive_float,
                             help="initial constant of CW-L2"),
}


# The D-ReLU paper's CIFAR-10 protocol (its ImageNet-sized runs) and
# AutoAttack's budgets, against which the CPU-scale CIFAR-10 runs are reduced.
CIFAR10_PAPER = dict(train_size=50000, epochs=2000, eval_images=10000,
                     initial_max_value=100.0, apgd_steps=100,
                     target_classes=9, square_queries=5000)
# What the CIFAR-10 experiments share, beside their own defaults.
CIFAR10_DEFAULTS = dict(batch_size=64, units=128, lam=0.1, max_value=1.0,
                        apgd_steps=20, target_classes=3, square_queries=300,
                        seed=0)


class ExperimentParser(argparse.ArgumentParser):
    """An `argparse` parser holding an experiment's common arguments.

    `--data` (where the script reads a data set), `--out`, `--quick` and the
    arguments of `ARGUMENTS` named in `defaults`, then the script's own
    `options`. With `--quick`, the preset's values replace the parsed ones.
    The parsed namespace carries `command`, the command line that
    reproduces the run.

    Example:

    >>> parser = ExperimentParser(
    ...     "Doc.", name="demo", dataset="mnist",
    ...     defaults=dict(eval_images=10000, seed=0),
    ...     quick=dict(eval_images=20))
    >>> args = parser.parse_args(["--quick"])
    >>> args.eval_images, args.out.name, args.command
    (20, 'demo', 'python experiments/demo.py --quick')

    Args:
        doc: The script's docstring; its first paragraph is the description.
        name: The script's name, also the default folder under
            `docs/results`.
        dataset: A key of `common.data.DATASETS`, or `None` for a script
            that reads no data set.
        defaults: Argument name of `ARGUMENTS` -> the script's default.
        quick: Argument name -> value of the `--quick` preset; it may name
            the script's own arguments too. `None` for a script without
            `--quick`.
        options: The script's own arguments: flag -> `add_argument`
            keywords. Defaults to `None`.
    """

    def __init__(self, doc, *, name, dataset, defaults, quick, options=None):
        super().__init__(
            prog=f"python experiments/{name}.py",
            description=doc.split("\n\n")[0],
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        self.quick = quick
        if dataset is not None:
            self.add_argument(
                "--data", type=pathlib.Path, default=data.default_path(dataset),
                help=".npz file in the keras.datasets layout",
            )
        self.add_argument("--out", type=pathlib.Path, default=RESULTS / name,
                          help="folder of table.md, results.json and figures")
        for key, default in defaults.items():
            keywords = dict(ARGUMENTS[key])
            keywords.pop("reduced", None)
            self.add_argument(
                "--" + key.replace("_", "-"), default=default, **keywords
            )
        for flag, keywords in (options or {}).items():
            self.add_argument(flag, **keywords)
        if quick is not None:
            self.add_argument(
                "--quick", action="store_true",
                help="tiny smoke run (seconds), masking checks on; not for "
                "results",
            )

    @classmethod
    def of(cls, experiment):
        """The parser of an experiment module (see `common`).

        Its name is the module's file name; `DATASET`, `DEFAULTS`, `QUICK`
        and `OPTIONS` are the arguments of the same names, lower-cased.
        """
        return cls(
            experiment.__doc__,
            name=pathlib.Path(experiment.__file__).stem,
            dataset=experiment.DATASET, defaults=experiment.DEFAULTS,
            quick=experiment.QUICK, options=experiment.OPTIONS,
        )

    def parse_args(self, args=None, namespace=None):
        argv = sys.argv[1:] if args is None else list(args)
        parsed = super().parse_args(argv, namespace)
        if getattr(parsed, "quick", False):
            for key, value in self.quick.items():
                setattr(parsed, key, value)
        parsed.command = shlex.join(self.prog.split() + argv)
        return parsed


def reduced(args, paper, wording=None):
    """What `args` reduce from the `paper`'s settings, in words.

    Example:

    >>> args = argparse.Namespace(eval_images=200, batch_size=128,
    ...                           train_size=None)
    >>> reduced(args, dict(eval_images=10000, batch_size=128,
    ...                    train_size=60000))
    ['200 test images (paper: 10000)']

    Args:
        args: Parsed arguments.
        paper: Argument name -> the paper's value. An unset argument
            (`None`) stands for the paper's value.
        wording: Argument name -> phrase with `{ours}` and `{paper}`, for
            the script's own arguments. Defaults to `None`: only those of
            `ARGUMENTS`.

    Returns:
        One phrase per argument that differs, in the order of `paper`.
    """
    wording = {
        **{key: spec.get("reduced") for key, spec in ARGUMENTS.items()},
        **(wording or {}),
    }
    phrases = []
    for key, value in paper.items():
        ours = getattr(args, key)
        if ours is not None and ours != value:
            phrases.append(
                wording[key].format(ours=_words(ours), paper=_words(value))
            )
    return phrases


def _words(value):
    if isinstance(value, (list, tuple)):
        return ", ".join(_words(item) for item in value) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)
