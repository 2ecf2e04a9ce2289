"""The recipe table: its entries, and a new recipe added in one call."""

import inspect
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_drelu import DReLU
from keras_drelu.training import PerModel
from keras_drelu.training import RECIPES
from keras_drelu.training import Recipe
from keras_drelu.training import RobustTraining
from keras_drelu.training import TrainingResult
from keras_drelu.training import get_recipe
from keras_drelu.training import register_recipe
from keras_drelu.training import train
from retrofit import run as runs
from retrofit.cli import main
from stand_in_backbone import tiny_retrofit

EPS = 0.1


class UniformNoiseTraining(RobustTraining):
    """The toy recipe: each batch plus uniform noise in `[-radius, radius]`.

    It records the largest perturbation it applied, for the tests to read.
    """

    def __init__(self, classifier, radius, from_logits=False, seed=None):
        super().__init__(
            classifier, eps=radius, step_size=radius, steps=1, norm="linf",
            from_logits=from_logits,
        )
        self.noise_seed = keras.random.SeedGenerator(seed)
        self.largest_noise = keras.Variable(0.0, trainable=False)

    def training_batch(self, x, y, sample_weight=None):
        noise = keras.random.uniform(
            keras.ops.shape(x), -self.eps, self.eps, seed=self.noise_seed
        )
        x_noisy = keras.ops.clip(x + noise, 0.0, 1.0)
        self.largest_noise.assign(
            keras.ops.maximum(
                self.largest_noise, keras.ops.max(keras.ops.abs(x_noisy - x))
            )
        )
        return keras.utils.pack_x_y_sample_weight(x_noisy, y, sample_weight)


@pytest.fixture
def toy():
    """Registers the recipe `"toy"`, and the trainers it builds."""
    built = []

    def build(classifier, **kwargs):
        built.append(UniformNoiseTraining(classifier, **kwargs))
        return built[-1]

    register_recipe(
        "toy", build, description="uniform noise of radius eps",
        arguments={"eps": "radius", "seed": "seed"}, required=("eps",),
    )
    try:
        yield built
    finally:
        del RECIPES["toy"]


def classifier():
    return keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(3),
    ])


def capped_classifier():
    return keras.Sequential([
        keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(8),
        DReLU(max_value_regularizer=1e-3), keras.layers.Dense(3),
    ])


def dataset():
    x = np.random.default_rng(0).uniform(size=(32, 4)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, np.arange(32) % 3)).batch(8)


# The table.


def test_built_in_recipes():
    assert list(RECIPES) == [
        "standard", "drelu", "pgd-at", "fgsm-at", "trades", "mtlat"
    ]
    adversarial = {name for name, r in RECIPES.items() if r.adversarial}
    assert adversarial == {"pgd-at", "fgsm-at", "trades", "mtlat"}
    assert [n for n, r in RECIPES.items() if r.needs_penalised_caps] == ["drelu"]
    for name, recipe in RECIPES.items():
        assert recipe.name == name and recipe.description
        assert (recipe.trainer is None) == (not recipe.arguments)


@pytest.mark.parametrize("name", ["pgd-at", "fgsm-at", "trades", "mtlat"])
def test_defaults_are_the_trainers_own(name):
    # The table states each default; the trainer class keeps its own for
    # direct use: they must agree.
    recipe = RECIPES[name]
    parameters = inspect.signature(recipe.trainer).parameters
    for argument, value in recipe.defaults.items():
        keyword = recipe.arguments[argument]
        if not isinstance(value, PerModel):
            assert parameters[keyword].default == value, argument
            continue
        # A default worked out per model: the trainer's `None` works it out
        # the same way.
        assert parameters[keyword].default is None, argument
        for model in (classifier(), capped_classifier()):
            trainer = recipe.trainer(model, eps=EPS)
            assert getattr(trainer, keyword) == value(model), argument
    for argument in recipe.required:
        assert parameters[recipe.arguments[argument]].default is inspect.Parameter.empty


def test_settings_fill_defaults_and_refuse_what_does_not_apply():
    trades = RECIPES["trades"]
    assert trades.settings(eps=0.1, beta=None) == {
        "eps": 0.1, "norm": "linf", "eps_ramp_steps": 0, "attack_steps": 10,
        "beta": 6.0,
    }
    assert RECIPES["mtlat"].settings(eps=0.1, attack_steps=3) == {
        "eps": 0.1, "norm": "linf", "eps_ramp_steps": 0, "attack_steps": 3,
        "mixup_alpha": 0.2,
    }
    with pytest.raises(ValueError, match="`mixup_alpha` does not apply"):
        trades.settings(eps=0.1, mixup_alpha=0.2)
    with pytest.raises(ValueError, match="needs the argument `eps`"):
        trades.settings()
    with pytest.raises(ValueError, match="applies to adversarial recipes"):
        RECIPES["standard"].settings(natural_epochs=2)


@pytest.mark.parametrize("name", ["pgd-at", "fgsm-at", "trades", "mtlat"])
def test_inner_gradient_default_is_worked_out_for_the_model(name):
    recipe = RECIPES[name]
    assert "inner_gradient" not in recipe.settings(eps=EPS)  # no model
    assert recipe.settings(eps=EPS, model=classifier())[
        "inner_gradient"] == "exact"
    assert recipe.settings(eps=EPS, model=capped_classifier())[
        "inner_gradient"] == "bpda"
    assert recipe.settings(eps=EPS, model=capped_classifier(),
                           inner_gradient="exact")["inner_gradient"] == "exact"
    with pytest.raises(ValueError, match="`inner_gradient` does not apply"):
        RECIPES["drelu"].settings(inner_gradient="bpda")


def test_auto_picks_drelu_for_penalised_caps():
    def model(cap):
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), cap])

    assert get_recipe("auto", model(DReLU(max_value_regularizer=0.1))).name == "drelu"
    assert get_recipe("auto", model(DReLU(max_value_regularizer=0.0))).name == "standard"
    assert get_recipe("auto", model(keras.layers.ReLU())).name == "standard"
    with pytest.raises(ValueError, match="recipe='madry'"):
        get_recipe("madry")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": "standard"}, "already registered"),
        ({"name": "auto"}, "name='auto'"),
        ({"trainer": 3}, "trainer=3"),
        ({"trainer": None, "arguments": ("eps",)}, "without a trainer takes no"),
        ({"defaults": {"beta": 1.0}}, r"\['beta'\], which are not among"),
        ({"required": ("beta",)}, r"\['beta'\], which are not among"),
        ({"adversarial": 1}, "adversarial=1"),
    ],
)
def test_bad_registrations(fields, message):
    arguments = {"name": "new", "trainer": UniformNoiseTraining,
                 "description": "d", "arguments": {"eps": "radius"}, **fields}
    with pytest.raises(ValueError, match=message):
        register_recipe(arguments.pop("name"), **arguments)
    assert "new" not in RECIPES


# A new recipe, through `train` and the command line.


def test_toy_recipe_through_train(toy):
    result = train(classifier, dataset(), recipe="toy", eps=EPS, epochs=2,
                   seed=0, default_callbacks=False, verbose=0)
    assert isinstance(result, TrainingResult)
    assert (result.recipe, result.settings, result.epochs) == (
        "toy", {"eps": EPS}, [0, 1]
    )
    assert type(result.model) is keras.Sequential
    assert sorted(result.history) == ["accuracy", "loss", "task_loss"]
    (trainer,) = toy
    assert trainer.classifier is result.model
    assert trainer.from_logits  # read from the model's last layer
    # The noise reached the batches, and stayed within the radius.
    assert 0.8 * EPS < float(trainer.largest_noise) <= EPS + 1e-6
    with pytest.raises(ValueError, match="`beta` does not apply to recipe='toy'"):
        train(classifier, dataset(), recipe="toy", eps=EPS, beta=1.0, epochs=1)
    with pytest.raises(ValueError, match="recipe='toy' needs the argument `eps`"):
        train(classifier, dataset(), recipe="toy", epochs=1)


def test_a_new_setting_reaches_the_trainer():
    register_recipe(
        "toy-radius", UniformNoiseTraining, description="d",
        arguments={"noise_radius": "radius"}, required=("noise_radius",),
    )
    try:
        result = train(classifier, dataset(), recipe="toy-radius",
                       noise_radius=0.25, epochs=1, verbose=0)
    finally:
        del RECIPES["toy-radius"]
    assert result.settings == {"noise_radius": 0.25}


def test_toy_recipe_through_the_cli(toy, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runs, "_build", tiny_retrofit)
    base = ["--backbone", "MobileNetV2", "--dataset", "digits", "--weights",
            "none", "--units", "8", "--epochs", "1", "--limit", "64",
            "--batch-size", "32", "--no-evaluate", "--recipe", "toy"]
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "toy: uniform noise of radius eps" in " ".join(
        capsys.readouterr().out.split()
    )

    status = main([*base, "--beta", "1", "--out", str(tmp_path / "bad")])
    assert status == 2
    assert "`beta` does not apply to recipe='toy'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()

    out = tmp_path / "toy"
    status = main([*base, "--train-eps", "0.05", "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "with recipe 'toy'" in captured.out
    record = json.loads((out / "run.json").read_text())
    assert record["recipe"] == "toy"
    assert record["recipe_settings"] == {"eps": 0.05}
    assert record["stage"] == "exported"
    (trainer,) = toy
    assert 0.0 < float(trainer.largest_noise) <= 0.05 + 1e-6


def test_recipe_is_plain_data():
    recipe = Recipe("x", "d", UniformNoiseTraining, arguments=("radius",))
    assert dict(recipe.arguments) == {"radius": "radius"}
    with pytest.raises(TypeError):
        recipe.arguments["eps"] = "eps"
    with pytest.raises(AttributeError):
        recipe.name = "y"
