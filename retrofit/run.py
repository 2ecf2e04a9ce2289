"""One retrofit run: data, model, fine-tuning, evaluation, export.

A run lives in one output directory:

- `run.json`: every setting, the stage reached, every result (with
  `--initial-max-value auto`, the calibrated caps) and the history of
  every epoch, written as each epoch ends;
- `checkpoints/<phase>/`: `BackupAndRestore` state while a phase of
  `PHASES` trains, and `<phase>.weights.h5` once it is done;
- `model.keras`: the trained classifier;
- `report.md`, `report.json`, `report.csv`, `examples.png`: the
  robustness evaluation;
- `evaluation-state.npz`: the evaluation's progress
  (`keras_drelu.evaluation.EvaluationState`), from which an interrupted
  evaluation continues with `resume=True` (`retrofit evaluate --resume`);
- `serving/`: the SavedModel for serving (uint8 images in, probabilities
  and class ids out), unless the settings say `export=False`.

Every file is written to a temporary name and renamed into place, so an
interrupted run never leaves a half-written file behind; `resume=True`
continues from the last finished epoch or stage.
"""

import dataclasses
import functools
import inspect
import json
import os
import pathlib
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_drelu import calibrate_caps
from keras_drelu import max_values
from keras_drelu.arguments import check_choice
from keras_drelu.arguments import check_non_negative
from keras_drelu.arguments import check_number
from keras_drelu.arguments import check_positive
from keras_drelu.arguments import check_seed
from keras_drelu.evaluation import EvaluationStateError
from keras_drelu.evaluation import evaluate_robustness
from keras_drelu.evaluation.suites import budget_overrides
from keras_drelu.layers.activations import make_activation
from keras_drelu.training import INNER_GRADIENTS
from keras_drelu.training import RECIPES
from keras_drelu.training import STRATEGIES
from keras_drelu.training import build_metrics
from keras_drelu.training import contains_caps
from keras_drelu.training import get_recipe
from keras_drelu.training import paper_callbacks
from keras_drelu.training import train
from keras_drelu.training.callbacks import TASK_LOSS
from keras_drelu.training.recipes import AUTO
from retrofit import data as data_sources
from retrofit.backbones import get_backbone
from retrofit.export import export_for_serving
from retrofit.placements import PLACEMENTS
from retrofit.placements import backbone_layer
from retrofit.placements import build_retrofit_model

SUITE_CHOICES = ("auto", "paper", "standard", "adaptive")
NORMS = ("linf", "l2")
PRECISIONS = ("auto", "on", "off")
STAGES = ("created", "trained", "evaluated", "exported")
EVALUATION_STATE = "evaluation-state.npz"
# `--initial-max-value auto`: each cap starts at this quantile of its unit's
# inputs over the first CALIBRATION_EXAMPLES training images
# (`keras_drelu.calibrate_caps`), so that the caps clip from the first step.
CALIBRATION_QUANTILE = 0.99
CALIBRATION_EXAMPLES = 512
# The recipe argument that `eps_ramp` sets, counted in steps.
RAMP = "eps_ramp_steps"
# The radius of the evaluation when `--eps` is not given.
EVALUATION_EPS = 8 / 255
# What a run whose caps train without adversarial training says, once.
CAPS_ALONE = (
    "note: capped activations alone do not withstand adaptive attacks "
    "(docs/results/robust_retrofit_mnist/table.md); pass --eps RADIUS for "
    "adversarial fine-tuning"
)


def robust_recipe():
    """The recipe `recipe="auto"` picks when a radius is given: the entry
    of `RECIPES` marked `robust_default` (the last registered, if several).

    Example:

    >>> robust_recipe().adversarial
    True
    """
    marked = [recipe for recipe in RECIPES.values() if recipe.robust_default]
    if not marked:
        raise RunError(
            "no recipe of RECIPES is marked robust_default; pass --recipe"
        )
    return marked[-1]


@dataclasses.dataclass(frozen=True)
class Phase:
    """One training phase of a run; a run trains the phases of `PHASES` in
    order, each with a fresh optimizer, skipping those given no epochs.

    Args:
        name: Its name in `run.json` and under `checkpoints/`.
        epochs: The `RunSettings` field holding its number of epochs.
        description: What it does, in words.
        backbone_trainable: Whether the backbone trains; frozen, only the
            layers around it do.
        natural: Whether it trains naturally (`get_recipe("auto")`: the
            cap penalty, if any, and nothing adversarial) instead of with
            the run's recipe.
        ramps: Whether the run's `eps_ramp` applies in it.
    """

    name: str
    epochs: str
    description: str
    backbone_trainable: bool = True
    natural: bool = False
    ramps: bool = False


PHASES = (
    Phase(
        "frozen", "freeze_epochs",
        "the backbone frozen, the layers around it trained with the run's "
        "recipe: with an adversarial recipe, a robust linear probe, the warm "
        "start of robust fine-tuning (Robust Linear Initialization, CVPR "
        "2024)",
        backbone_trainable=False, ramps=False,
    ),
    Phase(
        "natural", "natural_epochs",
        "natural training of the whole model before an adversarial recipe "
        "(the D-ReLU paper's schedule)",
        natural=True,
    ),
    Phase(
        "finetune", "epochs",
        "the whole model trained with the run's recipe",
        ramps=True,
    ),
)


def _tensorflow_gpu():
    return bool(tf.config.list_physical_devices("GPU"))


def _jax_gpu():
    import jax

    return jax.default_backend() == "gpu"


# How each Keras backend the runs train on says whether a GPU is at hand.
GPU_PRESENT = {"tensorflow": _tensorflow_gpu, "jax": _jax_gpu}


class RunError(ValueError):
    """A setting or output directory that a run cannot use."""


@dataclasses.dataclass
class RunSettings:
    """Every setting of a run; stored in `run.json`.

    Args:
        backbone: A `keras.applications` classifier name.
        dataset: A name of `retrofit.data.SOURCES`.
        data_path: File or directory for `npz` / `tiny_imagenet`.
        data_dir: tensorflow-datasets data directory.
        download: Whether tensorflow-datasets may download.
        image_size: Side of the `digits` images.
        limit: Cap on the number of train and test examples.
        augment: Augmentation preset of the data pipelines.
        validation_split: Share of training data held out (`None`: the
            source's default, 0.2 for Tiny ImageNet as in the paper, else 0.1).
        placement: One of `retrofit.placements.PLACEMENTS`: where the
            activation goes.
        activation: One of `keras_drelu.ACTIVATIONS`.
        units: Width of the dense layer of the `head` placement.
        lam: Penalty on the caps (`None`: the activation's default).
        initial_max_value: Initial cap (`None`: the activation's default),
            or `"auto"`: calibrated from the training data
            (`keras_drelu.calibrate_caps`).
        calibration_quantile: Quantile of each unit's inputs its cap starts
            at with `initial_max_value="auto"` (`None`:
            `CALIBRATION_QUANTILE`).
        max_value: Fixed cap, for the activations that take one.
        weights: `"imagenet"`, `"none"` or a weights file.
        backbone_size: Side the backbone is fed (`None`: automatic).
        recipe: One of `keras_drelu.training.RECIPES`, or `"auto"`: with
            `eps` given, the robust default (`robust_recipe`), else a
            recipe for the model (`keras_drelu.training.get_recipe`).
        epochs: Maximum fine-tuning epochs (phase `finetune` of `PHASES`).
        freeze_epochs: Epochs with the backbone frozen, trained with the
            run's recipe, before fine-tuning (phase `frozen`): with an
            adversarial recipe, the robust linear-probe warm start.
        natural_epochs: Natural epochs before an adversarial recipe (phase
            `natural`).
        batch_size: Training and evaluation batch size.
        train_eps: Radius of the training perturbation, for the recipes
            that take one (`None`: `eps`).
        attack_steps: Attack steps of the recipes that take them (`None`:
            the recipe's default).
        beta: Robustness weight of the recipes that take one (`None`: the
            recipe's default).
        mixup_alpha: Mixup parameter of the recipes that take one (`None`:
            the recipe's default).
        inner_gradient: Gradient the training attack follows through capped
            ReLUs, `"bpda"` or `"exact"`, for the recipes that attack
            (`None`: `"bpda"` for a model with caps, else `"exact"`).
        eps_ramp: Epochs over which the training radius of an adversarial
            recipe grows linearly from 0 to its target, in each phase of
            `PHASES` that ramps (`None`: no ramp).
        eps: Radius of the robustness evaluation and, unless `train_eps`
            is given, of training (`None`: `EVALUATION_EPS`); given, it
            also makes `recipe="auto"` the robust default.
        norm: `"linf"` or `"l2"`, of the evaluation and of the recipes that
            take a norm.
        suite: Attack suite; `"auto"` is `"adaptive"` for capped models.
        eval_images: Number of test images attacked.
        apgd_steps: APGD iterations (`None`: the suite's 100).
        square_queries: Square's query budget (`None`: the suite's 5000).
        evaluate: Whether to run the robustness evaluation after training
            (`retrofit evaluate` can run it later).
        export: Whether to export the SavedModel for serving at the end
            (`retrofit export` can export it later).
        strategy: `tf.distribute` strategy name, on the TensorFlow backend.
        mixed_precision: `"auto"` (on with a GPU), `"on"` or `"off"`.
        seed: Seed of every random choice.
    """

    backbone: str
    dataset: str
    data_path: str | None = None
    data_dir: str | None = None
    download: bool = True
    image_size: int = 32
    limit: int | None = None
    augment: str | None = None
    validation_split: float | None = None
    placement: str = "head"
    activation: str = "drelu"
    units: int = 256
    lam: float | None = None
    initial_max_value: float | str | None = None
    calibration_quantile: float | None = None
    max_value: float | None = None
    weights: str = "imagenet"
    backbone_size: int | None = None
    recipe: str = "auto"
    epochs: int = 30
    freeze_epochs: int = 0
    natural_epochs: int = 0
    batch_size: int = 64
    train_eps: float | None = None
    attack_steps: int | None = None
    beta: float | None = None
    mixup_alpha: float | None = None
    inner_gradient: str | None = None
    eps_ramp: float | None = None
    eps: float | None = None
    norm: str = "linf"
    suite: str = "auto"
    eval_images: int = 500
    apgd_steps: int | None = None
    square_queries: int | None = None
    evaluate: bool = True
    export: bool = True
    strategy: str = "none"
    mixed_precision: str = "auto"
    seed: int = 0

    def validate(self):
        """Checks every setting; raises `RunError` naming the bad one."""
        try:
            self._check()
        except RunError:
            raise
        except ValueError as error:
            raise RunError(str(error)) from error

    def _check(self):
        get_backbone(self.backbone)
        check_choice("dataset", self.dataset, data_sources.SOURCES)
        if self.dataset == "npz" and not self.data_path:
            raise RunError("--dataset npz needs --data-path FILE.npz")
        if self.data_path and not os.path.exists(self.data_path):
            raise RunError(f"data path {self.data_path!r} does not exist")
        check_choice("placement", self.placement, PLACEMENTS)
        # Made once to check the activation's settings through its table;
        # `auto` stands in as a cap, for an activation without caps to
        # refuse it.
        make_activation(
            self.activation, lam=self.lam,
            initial_max_value=1.0 if self.calibrated else self.initial_max_value,
            max_value=self.max_value,
        )
        check_number(
            "calibration_quantile", self.calibration_quantile, low=0, high=1,
            closed="right", allow_none=True,
        )
        if self.calibration_quantile is not None and not self.calibrated:
            raise RunError(
                "--calibration-quantile applies with --initial-max-value "
                f"{AUTO}. Received: initial_max_value="
                f"{self.initial_max_value!r}"
            )
        if self.inner_gradient is not None:
            check_choice("inner_gradient", self.inner_gradient, INNER_GRADIENTS)
        check_choice("recipe", self.recipe, (AUTO, *RECIPES))
        check_non_negative("eps_ramp", self.eps_ramp, allow_none=True)
        check_choice("suite", self.suite, SUITE_CHOICES)
        check_choice("norm", self.norm, NORMS)
        check_choice("mixed_precision", self.mixed_precision, PRECISIONS)
        check_choice("strategy", self.strategy, STRATEGIES)
        backend = keras.backend.backend()
        if self.strategy != "none" and backend != "tensorflow":
            raise RunError(
                f"--strategy {self.strategy} picks a tf.distribute strategy, "
                f"for the TensorFlow backend; this run uses {backend!r} "
                "(KERAS_BACKEND), which trains on one device here"
            )
        if backend not in GPU_PRESENT:
            raise RunError(
                f"retrofit trains on the {' and '.join(GPU_PRESENT)} backends; "
                f"KERAS_BACKEND is {backend!r}"
            )
        check_seed("seed", self.seed)
        for name in ("units", "epochs", "batch_size", "eval_images", "image_size"):
            check_positive(name, getattr(self, name), integer=True)
        for name in ("freeze_epochs", "natural_epochs"):
            check_non_negative(name, getattr(self, name), integer=True)
        for name in ("limit", "apgd_steps", "square_queries", "backbone_size",
                     "attack_steps"):
            check_positive(name, getattr(self, name), integer=True, allow_none=True)
        check_non_negative("beta", self.beta, allow_none=True)
        check_positive("mixup_alpha", self.mixup_alpha, allow_none=True)
        check_number(
            "validation_split", self.validation_split, low=0, high=1,
            closed="left", allow_none=True,
        )
        # Inputs lie in [0, 1]: an L-inf radius of 1 or more allows any image.
        upper = 1.0 if self.norm == "linf" else None
        for name in ("eps", "train_eps"):
            check_number(
                name, getattr(self, name), low=0, high=upper, closed="neither",
                allow_none=True,
            )
        if self.weights not in ("imagenet", "none") and not os.path.isfile(
            self.weights
        ):
            raise RunError(
                f"weights file {self.weights!r} does not exist; use "
                "--weights imagenet, none or a path to a weights file"
            )
        recipe = self.chosen_recipe()
        if recipe is not None:
            self.check_recipe(recipe)

    @property
    def evaluation_eps(self):
        """The radius of the evaluation: `eps`, else `EVALUATION_EPS`."""
        return EVALUATION_EPS if self.eps is None else self.eps

    def chosen_recipe(self):
        """The run's `Recipe`, or `None` where the model decides (`"auto"`
        without `eps`)."""
        if self.recipe != AUTO:
            return RECIPES[self.recipe]
        if self.eps is not None:
            return robust_recipe()
        return None

    @property
    def pretrained(self):
        """Whether the backbone starts from trained weights."""
        return self.weights != "none"

    @property
    def backbone_weights(self):
        return None if self.weights == "none" else self.weights

    @property
    def calibrated(self):
        """Whether the caps start calibrated (`initial_max_value="auto"`)."""
        return self.initial_max_value == AUTO

    def model_settings(self):
        """The settings the model is built with: with calibrated caps, the
        activation's default initial cap, which calibration replaces."""
        if self.calibrated:
            return dataclasses.replace(self, initial_max_value=None)
        return self

    def recipe_settings(self, recipe):
        """The arguments of `train` this run gives `recipe` (a `Recipe`).

        The training radius and norm are the evaluation's unless given, for
        the recipes that take them; other settings are `None` (the
        recipe's default) unless given.
        """
        given = {
            "eps": self.train_eps,
            "attack_steps": self.attack_steps,
            "beta": self.beta,
            "mixup_alpha": self.mixup_alpha,
            "inner_gradient": self.inner_gradient,
        }
        for name, value in (("eps", self.evaluation_eps), ("norm", self.norm)):
            if name in recipe.arguments and given.get(name) is None:
                given[name] = value
        return given

    def check_recipe(self, recipe, model=None):
        """Checks the run's settings against `recipe` (and `model`)."""
        recipe.settings(
            natural_epochs=self.natural_epochs, **self.recipe_settings(recipe)
        )
        if self.eps_ramp is not None and RAMP not in recipe.arguments:
            takers = [r.name for r in RECIPES.values() if RAMP in r.arguments]
            raise RunError(
                f"Argument `eps_ramp` does not apply to recipe="
                f"{recipe.name!r}; the recipes {takers} take it. Received: "
                f"eps_ramp={self.eps_ramp}"
            )
        if model is not None:
            recipe.check_model(model)


class RunDirectory:
    """The files of one run, written atomically."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __truediv__(self, name):
        return self.path / name

    @property
    def exists(self):
        return (self / "run.json").is_file()

    def read(self):
        try:
            return json.loads((self / "run.json").read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise RunError(f"{self / 'run.json'} cannot be read: {error}") from error

    def write(self, record):
        self.write_text("run.json", json.dumps(record, indent=2, default=_json_default))

    def write_text(self, name, text):
        target = self / name
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_text(text)
        os.replace(temporary, target)

    def save_model(self, model):
        temporary = self / ".model.tmp.keras"
        model.save(temporary)
        os.replace(temporary, self / "model.keras")

    def load_model(self):
        path = self / "model.keras"
        if not path.is_file():
            raise RunError(f"{self.path} holds no trained model ({path.name})")
        return keras.saving.load_model(path)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# The command-line option of each data source argument a failed load can
# point to instead.
_DATA_OPTIONS = {"data_dir": "--data-dir DIR", "path": "--data-path PATH"}


def load_data(settings):
    """The `DataSplits` of a run's data set.

    Each source gets the settings it takes (by its signature); a data set
    that can be neither found nor downloaded ends in one line saying where
    it was looked for and what to pass instead.
    """
    available = {
        "batch_size": settings.batch_size,
        "seed": settings.seed,
        "limit": settings.limit,
        "augment": settings.augment,
        "validation_split": settings.validation_split,
        "data_dir": settings.data_dir,
        "download": settings.download,
        "path": settings.data_path,
        "image_size": settings.image_size,
    }
    accepted = inspect.signature(data_sources.SOURCES[settings.dataset]).parameters
    kwargs = {
        key: value for key, value in available.items()
        if key in accepted and value is not None
    }
    try:
        return data_sources.load(settings.dataset, **kwargs)
    except data_sources.DataUnavailableError as error:
        options = [_DATA_OPTIONS[name] for name in error.alternatives]
        if settings.dataset != "npz":
            options.append("--dataset npz --data-path FILE.npz")
        raise RunError(f"{error}; pass {' or '.join(options)}") from error
    except (ValueError, FileNotFoundError) as error:
        raise RunError(str(error).splitlines()[0]) from error


def _check_writable(path):
    """Refuses an output path that cannot be written, before any work."""
    path = pathlib.Path(path).absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise RunError(
            f"output directory {str(path)!r} cannot be created: "
            f"{str(existing)!r} is a file"
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise RunError(
            f"output directory {str(path)!r} cannot be written "
            f"({error.strerror or error}); choose another --out"
        ) from error


def _set_precision(settings):
    backend = keras.backend.backend()
    has_gpu = GPU_PRESENT[backend]()
    mixed = settings.mixed_precision == "on" or (
        settings.mixed_precision == "auto" and has_gpu
    )
    keras.config.set_dtype_policy("mixed_float16" if mixed else "float32")
    # Keras compiles with XLA by itself (`jit_compile="auto"`) when a GPU is
    # present and no distribution strategy is in use; JAX always does.
    xla = backend == "jax" or (has_gpu and settings.strategy == "none")
    return mixed, xla


def _build(settings, info):
    return build_retrofit_model(
        settings.backbone,
        info.image_shape,
        info.num_classes,
        placement=settings.placement,
        activation=settings.activation,
        units=settings.units,
        lam=settings.lam,
        initial_max_value=settings.initial_max_value,
        max_value=settings.max_value,
        weights=settings.backbone_weights,
        image_size=settings.backbone_size,
    )


def set_backbone_trainable(model, trainable, pretrained):
    """Freezes or unfreezes the backbone of a retrofit model.

    Unfrozen, a pretrained backbone keeps its batch normalization layers in
    inference mode, as Keras' transfer-learning guide advises: trained,
    they would normalise with the statistics of each batch of the new task
    (and, in adversarial training, of attacked inputs) while their slow
    moving averages (momentum 0.99 to 0.999) stay near the pretraining
    data's, and a model that fits its training batches then classifies at
    chance in inference mode. A backbone trained from random weights needs
    its statistics learned, so all of it trains.

    Example:

    >>> model = build_retrofit_model("MobileNetV2", (32, 32, 3), 2,
    ...                              units=4, weights=None)
    >>> set_backbone_trainable(model, True, pretrained=True)
    >>> backbone = backbone_layer(model)
    >>> backbone.trainable, backbone.get_layer("bn_Conv1").trainable
    (True, False)

    Args:
        model: A model of `build_retrofit_model`.
        trainable: Whether the backbone trains.
        pretrained: Whether its weights were trained before the retrofit.
    """
    backbone = backbone_layer(model)
    backbone.trainable = trainable
    if trainable and pretrained:
        for layer in backbone._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


def _recipe(settings, model):
    """The run's `Recipe` for `model`, checked against the settings."""
    try:
        recipe = settings.chosen_recipe() or get_recipe(settings.recipe, model)
        settings.check_recipe(recipe, model)
    except ValueError as error:
        raise RunError(str(error)) from error
    return recipe


def _rebuild(settings, info, directory, done, trainable):
    model = _build(settings.model_settings(), info)
    if done:
        model.load_weights(directory / "checkpoints" / f"{done[-1]}.weights.h5")
    elif settings.calibrated:
        model.load_weights(directory / "checkpoints" / CALIBRATED)
    set_backbone_trainable(model, trainable, settings.pretrained)
    return model


# The weights of a model whose caps were calibrated, before any training.
CALIBRATED = "calibrated.weights.h5"


def calibrate(settings, model, splits, log):
    """Sets the caps of `model` from the training data (`initial_max_value
    "auto"`); returns what `run.json` records of it."""
    quantile = settings.calibration_quantile or CALIBRATION_QUANTILE
    images = np.concatenate([
        np.asarray(x) for x, _ in splits.train.unbatch()
        .take(CALIBRATION_EXAMPLES).batch(settings.batch_size)
    ])
    caps = calibrate_caps(
        model,
        tf.data.Dataset.from_tensor_slices(images).batch(settings.batch_size),
        quantile=quantile,
    )
    summary = {
        name: {
            "min": float(np.min(values)),
            "median": float(np.median(values)),
            "mean": float(np.mean(values)),
            "max": float(np.max(values)),
        }
        for name, values in caps.items()
    }
    for name, values in summary.items():
        log(
            f"calibrated caps of {name} at the {quantile:g} quantile of "
            f"{len(images)} training images: median {values['median']:.4g} "
            f"(min {values['min']:.4g}, max {values['max']:.4g})"
        )
    return {"quantile": quantile, "examples": len(images), "max_values": summary}


class EpochRecorder(keras.callbacks.Callback):
    """Writes each finished epoch's logs into the run's history and
    `run.json`, so that a run resumed after a kill keeps every epoch.

    It is placed before the `BackupAndRestore` callback: an epoch is in
    `run.json` before its backup is saved, and an epoch run again after a
    kill between the two replaces its record (and any after it).

    Args:
        directory: The run's `RunDirectory`.
        record: The run's record; `record["history"][phase]` holds the
            epochs run (`"epochs"`) and each logged value per epoch.
        phase: The name of the phase trained.
    """

    def __init__(self, directory, record, phase):
        super().__init__()
        self.directory = directory
        self.record = record
        self.phase = phase

    def on_epoch_end(self, epoch, logs=None):
        history = self.record.setdefault("history", {}).setdefault(
            self.phase, {"epochs": []}
        )
        if epoch in history["epochs"]:
            kept = history["epochs"].index(epoch)
            for values in history.values():
                del values[kept:]
        done = len(history["epochs"])
        history["epochs"].append(int(epoch))
        for key, value in (logs or {}).items():
            history.setdefault(key, [None] * done).append(float(value))
        for values in history.values():
            values.extend([None] * (done + 1 - len(values)))
        self.directory.write(self.record)


def _callbacks(directory, record, phase, splits):
    """The paper's callbacks, the epoch recorder, then the backup."""
    monitor = TASK_LOSS if splits.validation is None else "val_" + TASK_LOSS
    return [
        *paper_callbacks(None, monitor),
        EpochRecorder(directory, record, phase),
        keras.callbacks.BackupAndRestore(
            str(directory / "checkpoints" / phase)
        ),
    ]


def train_run(settings, directory, record, splits, model, recipes, log):
    """Fine-tunes `model` phase by phase (`PHASES`), resuming a phase from
    its backup.

    Args:
        settings: The `RunSettings`.
        directory: The `RunDirectory`.
        record: The run's record, updated and written as training goes.
        splits: The `DataSplits`.
        model: The classifier.
        recipes: `(recipe, natural)`: the run's `Recipe` and the one of the
            natural phase.
        log: Where progress lines go.
    """
    recipe, natural = recipes
    record["recipe"] = recipe.name
    done = record.setdefault("phases_done", [])
    record.setdefault("history", {})
    seeded = False
    for phase in PHASES:
        epochs = getattr(settings, phase.epochs)
        if not epochs:
            continue
        weights_file = directory / "checkpoints" / f"{phase.name}.weights.h5"
        if phase.name in done and weights_file.is_file():
            model.load_weights(weights_file)
            continue
        used = natural if phase.natural else recipe
        log(f"[{phase.name}] training {epochs} epoch(s) with recipe "
            f"{used.name!r}")
        set_backbone_trainable(
            model, phase.backbone_trainable, settings.pretrained
        )
        if settings.strategy != "none":
            # Variables must be made inside the strategy's scope: rebuild the
            # model there, with the weights of the phases already done.
            model = functools.partial(
                _rebuild, settings, splits.info, directory, done,
                phase.backbone_trainable,
            )
        recipe_settings = {} if phase.natural else settings.recipe_settings(used)
        result = train(
            model,
            splits.train,
            splits.validation,
            recipe=used.name,
            epochs=epochs,
            eps_ramp=settings.eps_ramp if phase.ramps and not phase.natural
            else None,
            callbacks=_callbacks(directory, record, phase.name, splits),
            default_callbacks=False,
            strategy=None if settings.strategy == "none" else settings.strategy,
            seed=None if seeded else settings.seed,
            verbose="auto",
            **recipe_settings,
        )
        seeded = True
        model = result.model
        model.save_weights(weights_file)
        if not phase.natural:
            record["recipe_settings"] = result.settings
        done.append(phase.name)
        directory.write(record)
    backbone_layer(model).trainable = True
    return model


def _overrides(settings):
    return budget_overrides(
        apgd_steps=settings.apgd_steps, square_queries=settings.square_queries
    )


def evaluate_model(settings, directory, record, model, splits, log, resume=False):
    """Clean accuracy on the test split, then the robustness report.

    The evaluation saves its progress in `EVALUATION_STATE`; with `resume`
    it continues from a saved state, else it starts afresh.
    """
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    build_metrics(model, splits.test)  # Else the test step is traced twice.
    _, clean = model.evaluate(splits.test, verbose=0)
    log(f"clean test accuracy: {clean:.4f}")
    state_path = directory / EVALUATION_STATE
    if not resume:
        state_path.unlink(missing_ok=True)
    try:
        report = evaluate_robustness(
            model,
            splits.test,
            eps=settings.evaluation_eps,
            n_examples=settings.eval_images,
            norm=settings.norm,
            suite=None if settings.suite == "auto" else settings.suite,
            batch_size=max(settings.batch_size, 128),
            overrides=_overrides(settings) or None,
            seed=settings.seed,
            model_name=f"{settings.backbone} + {settings.activation} "
                       f"({settings.placement})",
            state_path=state_path,
        )
    except EvaluationStateError as error:
        raise RunError(
            f"{error} (run without --resume to start afresh)"
        ) from error
    directory.write_text("report.md", report.to_markdown())
    directory.write_text("report.json", report.to_json())
    directory.write_text("report.csv", report.to_csv())
    report.save_examples_png(str(directory / "examples.png"))
    record["results"] = {
        "clean_test_accuracy": float(clean),
        "robustness": report.to_dict(),
        "max_values": {
            name: {
                "min": float(caps.min()),
                "mean": float(caps.mean()),
                "max": float(caps.max()),
            }
            for name, caps in max_values(model).items()
        },
    }
    return report


def _stored_settings(directory, record):
    try:
        return RunSettings(**record["settings"])
    except (KeyError, TypeError) as error:
        raise RunError(
            f"{directory / 'run.json'} holds settings this version cannot "
            f"read ({error}); was it written by an older version?"
        ) from error


def _check_directory(directory, settings, resume, overwrite):
    """The settings and record to run with, after checking `directory`."""
    if directory.path.exists() and not directory.path.is_dir():
        raise RunError(f"output path {str(directory.path)!r} is a file")
    if directory.exists and not (resume or overwrite):
        raise RunError(
            f"output directory {str(directory.path)!r} already holds a run; "
            "pass --resume to continue it or --overwrite to replace it"
        )
    if resume:
        if not directory.exists:
            raise RunError(
                f"nothing to resume: {str(directory.path)!r} holds no run.json"
            )
        record = directory.read()
        return _stored_settings(directory, record), record
    return settings, {"settings": dataclasses.asdict(settings), "stage": "created"}


def run(settings, out, *, resume=False, overwrite=False, log=print):
    """Runs (or resumes) a whole retrofit and returns its `run.json` record.

    Nothing is written before the settings, the data and the backbone have
    been checked, so a bad setting never leaves a half-made run behind.

    Args:
        settings: `RunSettings`; with `resume`, the stored ones are used.
        out: Output directory.
        resume: Continue the run stored in `out`.
        overwrite: Replace a run stored in `out`.
        log: Where progress lines go.
    """
    settings.validate()
    directory = RunDirectory(out)
    settings, record = _check_directory(directory, settings, resume, overwrite)
    _check_writable(directory.path)
    mixed, xla = _set_precision(settings)
    # Seeded before the data too: tf.data's shuffle combines its own seed
    # with TensorFlow's global one as it is when the pipeline is made, so
    # without this the same --seed gave another order of the data after any
    # earlier keras.utils.set_random_seed in the process.
    keras.utils.set_random_seed(settings.seed)
    splits = load_data(settings)
    log(
        f"data: {splits.info.name}, {splits.info.num_classes} classes, images "
        f"{splits.info.image_shape}; mixed precision: {'on' if mixed else 'off'}; "
        f"XLA: {'on' if xla else 'off'}"
    )
    stage = STAGES.index(record["stage"])
    model = recipes = None
    calibration = None
    if stage < STAGES.index("trained"):
        # Seeded before the model is built, so that its initial weights,
        # and the caps calibrated on them, repeat with the seed.
        keras.utils.set_random_seed(settings.seed)
        model = _build(settings.model_settings(), splits.info)
        recipes = (_recipe(settings, model), get_recipe(AUTO, model))
        if settings.calibrated:
            calibration = calibrate(settings, model, splits, log)
        if not recipes[0].adversarial and contains_caps(model):
            log(CAPS_ALONE)
    if not resume:
        if overwrite and directory.path.exists():
            shutil.rmtree(directory.path)
        (directory / "checkpoints").mkdir(parents=True, exist_ok=True)
        directory.write(record)
    if calibration is not None:
        record["calibration"] = calibration
        model.save_weights(directory / "checkpoints" / CALIBRATED)
        directory.write(record)
    if model is not None:
        model = train_run(settings, directory, record, splits, model, recipes, log)
        directory.save_model(model)
        record["stage"] = "trained"
        directory.write(record)
    else:
        model = directory.load_model()
    if stage < STAGES.index("evaluated") and settings.evaluate:
        report = evaluate_model(
            settings, directory, record, model, splits, log, resume=resume
        )
        log(str(report))
        record["stage"] = "evaluated"
        directory.write(record)
    if stage < STAGES.index("exported") and settings.export:
        record["serving"] = export_for_serving(model, directory / "serving")
        record["stage"] = "exported"
        directory.write(record)
    log(f"model: {directory / 'model.keras'}")
    if "serving" in record:
        log(f"SavedModel for serving: {record['serving']}")
    else:
        log(f"SavedModel for serving: not exported; 'retrofit export "
            f"{directory.path}' exports it")
    return record


def evaluate_existing(out, log=print, resume=False, **changes):
    """Evaluates the model of a finished run again, with `changes` applied.

    Args:
        out: The run's directory.
        log: Where progress lines go.
        resume: Continue an interrupted evaluation of the same settings
            from its saved state (`EVALUATION_STATE`), instead of starting
            afresh.
        **changes: `RunSettings` fields to change for this evaluation
            (`eps`, `norm`, `suite`, `eval_images`, `apgd_steps`,
            `square_queries`).
    """
    directory = RunDirectory(out)
    if not directory.exists:
        raise RunError(f"{str(directory.path)!r} holds no run (no run.json)")
    record = directory.read()
    settings = dataclasses.replace(_stored_settings(directory, record), **changes)
    settings.validate()
    model = directory.load_model()
    splits = load_data(settings)
    report = evaluate_model(
        settings, directory, record, model, splits, log, resume=resume
    )
    record["settings"] = dataclasses.asdict(settings)
    directory.write(record)
    log(str(report))
    return report


def export_existing(out, to=None, log=print):
    """Exports the model of a finished run as a SavedModel for serving.

    Exported into the run's own `serving/` (no `to`), the path is recorded
    in its `run.json`, as the run's own export records it; its stage is
    left alone, so a `resume` still runs a stage the run has not finished.
    """
    directory = RunDirectory(out)
    if not directory.exists:
        raise RunError(f"{str(directory.path)!r} holds no run (no run.json)")
    target = to or directory / "serving"
    _check_writable(target)
    model = directory.load_model()
    path = export_for_serving(model, target)
    if to is None:
        record = directory.read()
        record["serving"] = path
        directory.write(record)
    log(f"SavedModel for serving: {path}")
    return path
