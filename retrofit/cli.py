"""The `retrofit` command line.

    retrofit --backbone InceptionV3 --dataset cifar10 --placement head \\
        --activation drelu --lam 100 --epochs 30 --out runs/inception-cifar10
    retrofit evaluate RUN_DIR [--eps 0.03] [--suite paper] [--resume]
    retrofit export RUN_DIR [--to PATH]
    retrofit backbones

Bad input ends with one line on stderr and exit status 2.
"""

import argparse
import dataclasses
import sys

# TensorFlow is loaded quietly by the package (`retrofit.startup`), before
# this module.
from keras_drelu.layers.activations import ACTIVATIONS
from keras_drelu.training import INNER_GRADIENTS
from keras_drelu.training import RECIPE_ARGUMENTS
from keras_drelu.training import RECIPES
from keras_drelu.training import STRATEGIES
from keras_drelu.training.recipes import AUTO
from keras_drelu.training.recipes import AUTO_DESCRIPTION
from keras_drelu.training.recipes import INNER_GRADIENT_DEFAULT
from retrofit.backbones import BACKBONES
from retrofit.backbones import BackboneError
from retrofit.export import ExportError
from retrofit.placements import PLACEMENTS
from retrofit.run import CALIBRATION_EXAMPLES
from retrofit.run import CALIBRATION_QUANTILE
from retrofit.run import EVALUATION_EPS
from retrofit.run import NORMS
from retrofit.run import PHASES
from retrofit.run import RAMP
from retrofit.run import PRECISIONS
from retrofit.run import SUITE_CHOICES
from retrofit.run import RunError
from retrofit.run import RunSettings
from retrofit.run import robust_recipe

COMMANDS = ("evaluate", "export", "backbones")
PHASE_HELP = {phase.name: phase.description for phase in PHASES}
RAMPING = " and ".join(phase.name for phase in PHASES if phase.ramps)
EVALUATION_EPS_TEXT = f"{round(EVALUATION_EPS * 255)}/255"


def _number(text):
    """A float, also written as a fraction such as `8/255`."""
    try:
        if "/" in text:
            numerator, denominator = text.split("/")
            return float(numerator) / float(denominator)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _number_or_auto(text):
    """`auto`, or a number as `_number` reads it."""
    return AUTO if text == AUTO else _number(text)


def _table_help(table, default):
    """Each entry of a table with its description, for `--help`."""
    entries = "; ".join(
        f"{name}: {entry.description}" for name, entry in table.items()
    )
    return f"{entries} (default: {default})"


def _setting_help(text, table, field, setting, default=None):
    """`text`, the entries of `table` whose `field` has `setting`, defaults."""
    takers = [e for e in table.values() if setting in getattr(e, field)]
    names = ", ".join(entry.name for entry in takers)
    defaults = [
        f"{entry.name} {entry.defaults[setting]}"
        for entry in takers if setting in entry.defaults
    ]
    if default is None and not defaults:
        return f"{text}; required for {names}"
    return f"{text}; for {names} (default: {default or ', '.join(defaults)})"


def _recipe_help(argument, default=None):
    return _setting_help(
        RECIPE_ARGUMENTS[argument], RECIPES, "arguments", argument, default
    )


def _add_evaluation_options(parser, defaults, eps_help):
    group = parser.add_argument_group("robustness evaluation")
    group.add_argument("--eps", type=_number, default=defaults.get("eps"),
                       help=eps_help)
    group.add_argument("--norm", choices=NORMS, default=defaults.get("norm"),
                       help="threat model, also of the recipes that take a norm "
                            "(default: %(default)s)")
    group.add_argument("--suite", choices=SUITE_CHOICES, default=defaults.get("suite"),
                       help="attack suite; auto is adaptive for capped models, standard "
                            "otherwise (default: %(default)s)")
    group.add_argument("--eval-images", type=int, default=defaults.get("eval_images"),
                       help="test images attacked (default: %(default)s)")
    group.add_argument("--apgd-steps", type=int, default=defaults.get("apgd_steps"),
                       help="APGD and FAB-T iterations (default: the suite's 100)")
    group.add_argument("--square-queries", type=int, default=defaults.get("square_queries"),
                       help="Square attack query budget (default: the suite's 5000)")
    return group


def train_parser():
    d = RunSettings(backbone="", dataset="")
    parser = argparse.ArgumentParser(
        prog="retrofit",
        description="Retrofit a keras.applications backbone with a capped activation "
                    "in a dense head or after the input, fine-tune it, evaluate its "
                    "robustness honestly and export it for serving.",
        epilog="Other commands: 'retrofit evaluate RUN_DIR', 'retrofit export RUN_DIR', "
               "'retrofit backbones' (each has --help).",
    )
    parser.add_argument("--backbone", required=True,
                        help="keras.applications classifier, e.g. MobileNetV2, ResNet50, "
                             "InceptionV3 ('retrofit backbones' lists them)")
    parser.add_argument("--out", required=True, help="output directory of the run")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a run already in --out")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --out with its stored settings")

    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="digits",
                      help="mnist, cifar10, cifar100, tiny_imagenet, npz or digits "
                           "(scikit-learn's bundled digits, offline) (default: %(default)s)")
    data.add_argument("--data-path",
                      help="the .npz file for --dataset npz, or a tiny-imagenet-200 "
                           "directory (downloaded when omitted)")
    data.add_argument("--data-dir", help="tensorflow-datasets data directory")
    data.add_argument("--no-download", dest="download", action="store_false",
                      help="never download a data set")
    data.add_argument("--image-size", type=int, default=d.image_size,
                      help="side of the digits images (default: %(default)s)")
    data.add_argument("--limit", type=int,
                      help="use at most this many train and test examples")
    data.add_argument("--augment", help="augmentation preset of the data pipeline")
    data.add_argument("--validation-split", type=float,
                      help="share of training data held out (default: 0.2 for "
                           "tiny_imagenet as in the paper, else 0.1)")

    model = parser.add_argument_group("model")
    model.add_argument("--placement", choices=PLACEMENTS, default=d.placement,
                       help="where the activation goes: "
                            + _table_help(PLACEMENTS, d.placement))
    model.add_argument("--activation", choices=ACTIVATIONS, default=d.activation,
                       help=_table_help(ACTIVATIONS, d.activation))
    model.add_argument("--units", type=int, default=d.units,
                       help="width of the dense layer of the head placement "
                            "(default: %(default)s)")
    model.add_argument("--lam", type=_number,
                       help=_setting_help("cap penalty lam * sum(m**2)",
                                          ACTIVATIONS, "settings", "lam"))
    model.add_argument("--initial-max-value", type=_number_or_auto,
                       help=_setting_help(
                           f"initial cap, or {AUTO}: each cap at a quantile of its "
                           f"unit's inputs over the first {CALIBRATION_EXAMPLES} "
                           "training images (keras_drelu.calibrate_caps), so that "
                           "the caps clip from the first step",
                           ACTIVATIONS, "settings", "initial_max_value"))
    model.add_argument("--calibration-quantile", type=_number,
                       help=f"quantile of each unit's inputs its cap starts at, with "
                            f"--initial-max-value {AUTO} (default: "
                            f"{CALIBRATION_QUANTILE})")
    model.add_argument("--max-value", type=_number,
                       help=_setting_help("fixed cap", ACTIVATIONS, "settings",
                                          "max_value"))
    model.add_argument("--weights", default=d.weights,
                       help="imagenet (downloaded by Keras), none, or a weights file "
                            "(default: %(default)s)")
    model.add_argument("--backbone-size", type=int,
                       help="side the backbone is fed (default: the data's, raised to "
                            "the backbone's minimum)")

    training = parser.add_argument_group("training")
    training.add_argument("--recipe", choices=(AUTO, *RECIPES), default=d.recipe,
                          help=f"{AUTO}: {robust_recipe().name} when --eps is "
                               f"given, else {AUTO_DESCRIPTION}; "
                               + _table_help(RECIPES, d.recipe))
    training.add_argument("--epochs", type=int, default=d.epochs,
                          help="maximum epochs, with the paper's early stopping "
                               "(default: %(default)s)")
    training.add_argument("--freeze-epochs", type=int, default=d.freeze_epochs,
                          help="epochs first with " + PHASE_HELP["frozen"]
                               + " (default: %(default)s)")
    training.add_argument("--natural-epochs", type=int, default=d.natural_epochs,
                          help="epochs of " + PHASE_HELP["natural"]
                               + ", after the frozen ones (default: %(default)s)")
    training.add_argument("--batch-size", type=int, default=d.batch_size,
                          help="batch size (default: %(default)s)")
    training.add_argument("--train-eps", type=_number,
                          help=_recipe_help("eps", default="--eps"))
    training.add_argument("--attack-steps", type=int,
                          help=_recipe_help("attack_steps"))
    training.add_argument("--beta", type=_number, help=_recipe_help("beta"))
    training.add_argument("--mixup-alpha", type=_number,
                          help=_recipe_help("mixup_alpha"))
    training.add_argument("--eps-ramp", type=_number, metavar="EPOCHS",
                          help=_setting_help(
                              f"epochs over which the training radius grows "
                              f"linearly from 0 to its target, in phase "
                              f"{RAMPING} (Ngnawe et al. 2025: robust fine-tuning "
                              f"of a pretrained model transfers badly without it)",
                              RECIPES, "arguments", RAMP, "none"))
    training.add_argument("--inner-gradient", choices=INNER_GRADIENTS,
                          help=_recipe_help("inner_gradient",
                                            default=str(INNER_GRADIENT_DEFAULT)))
    training.add_argument("--strategy", choices=STRATEGIES, default=d.strategy,
                          help="tf.distribute strategy (default: %(default)s)")
    training.add_argument("--mixed-precision", choices=PRECISIONS,
                          default=d.mixed_precision,
                          help="mixed_float16; auto turns it on with a GPU "
                               "(default: %(default)s)")
    training.add_argument("--seed", type=int, default=d.seed,
                          help="seed of every random choice (default: %(default)s)")
    evaluation = _add_evaluation_options(
        parser, dataclasses.asdict(d),
        f"attack radius, e.g. 8/255, of the evaluation and of the training of "
        f"the adversarial recipes; given, it makes --recipe {AUTO} pick "
        f"{robust_recipe().name} (default: {EVALUATION_EPS_TEXT} for the "
        f"evaluation, and no robust training)",
    )
    evaluation.add_argument("--no-evaluate", dest="evaluate", action="store_false",
                            help="train and export only; 'retrofit evaluate' can run "
                                 "the evaluation later")
    evaluation.add_argument("--no-export", dest="export", action="store_false",
                            help="write no SavedModel for serving; 'retrofit export' "
                                 "can export the run's model later")
    return parser


def evaluate_parser():
    parser = argparse.ArgumentParser(
        prog="retrofit evaluate",
        description="Evaluate the model of a finished run again; the options change "
                    "the stored settings for this evaluation.",
    )
    parser.add_argument("run_dir", help="output directory of a run")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted evaluation with the same settings "
                             "from its saved state in RUN_DIR (default: start afresh)")
    _add_evaluation_options(
        parser, {}, "attack radius, e.g. 8/255 (default: the run's)"
    )
    return parser


def export_parser():
    parser = argparse.ArgumentParser(
        prog="retrofit export",
        description="Export the model of a finished run as a SavedModel taking uint8 "
                    "images ('images') and returning 'probabilities' and 'class_id'.",
    )
    parser.add_argument("run_dir", help="output directory of a run")
    parser.add_argument("--to", help="directory to write (default: RUN_DIR/serving)")
    return parser


def _list_backbones():
    for entry in BACKBONES.values():
        note = f", ImageNet weights need {entry.imagenet_size}x{entry.imagenet_size}" \
            if entry.imagenet_size else ""
        print(f"{entry.name:20s} min input {entry.min_size}x{entry.min_size}{note}")


def _dispatch(argv):
    from retrofit import run as runs

    if argv and argv[0] == "backbones":
        _list_backbones()
        return
    if argv and argv[0] == "evaluate":
        args = evaluate_parser().parse_args(argv[1:])
        changes = {
            key: value
            for key, value in vars(args).items()
            if key not in ("run_dir", "resume") and value is not None
        }
        runs.evaluate_existing(args.run_dir, resume=args.resume, **changes)
        return
    if argv and argv[0] == "export":
        args = export_parser().parse_args(argv[1:])
        runs.export_existing(args.run_dir, args.to)
        return
    args = vars(train_parser().parse_args(argv))
    out, resume, overwrite = args.pop("out"), args.pop("resume"), args.pop("overwrite")
    if resume and overwrite:
        raise RunError("--resume and --overwrite contradict each other")
    runs.run(RunSettings(**args), out, resume=resume, overwrite=overwrite)


def main(argv=None):
    """Entry point of `retrofit` and `python -m retrofit`; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        _dispatch(argv)
    except (RunError, BackboneError, ExportError) as error:
        print(f"retrofit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("retrofit: interrupted; continue with --resume", file=sys.stderr)
        return 130
    return 0
