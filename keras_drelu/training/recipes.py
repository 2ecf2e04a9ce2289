"""The training recipes by name: one table that `train` and `retrofit` read.

A recipe is an entry of `RECIPES`: the trainer that changes each training
step (`None`: the classifier trains itself), the arguments of `train` it
takes with their defaults, and what it needs. `register_recipe` adds one,
so that a new recipe is its trainer module plus one call.
"""

import dataclasses
import types
from collections.abc import Mapping

from keras_drelu.arguments import check_bool
from keras_drelu.arguments import check_choice
from keras_drelu.training.adversarial import AdversarialTraining
from keras_drelu.training.adversarial import FastAdversarialTraining
from keras_drelu.training.caps import has_penalised_caps
from keras_drelu.training.mtlat import MTLAT
from keras_drelu.training.robust_training import INNER_GRADIENTS
from keras_drelu.training.robust_training import default_inner_gradient
from keras_drelu.training.trades import TRADES

AUTO = "auto"
AUTO_DESCRIPTION = "drelu for a model with penalised caps, else standard"

# The recipe settings `train` knows, for error messages and command lines.
RECIPE_ARGUMENTS = {
    "eps": "radius of the training perturbation, such as 0.3 for MNIST or "
           "8/255 for CIFAR",
    "step_size": "length of each attack step",
    "attack_steps": "attack steps per batch",
    "norm": "threat model of the training attack, 'linf' or 'l2'",
    "beta": "weight of the robustness (KL) term",
    "mixup_alpha": "Beta parameter of the Mixup weights",
    "inner_gradient": "gradient the training attack follows through capped "
                      f"ReLUs, one of {INNER_GRADIENTS}: 'bpda' passes it "
                      "straight through the caps, 'exact' stalls where they "
                      "clip",
    "eps_ramp_steps": "optimizer steps over which the training radius grows "
                      "from 0 to eps (0: none)",
}


@dataclasses.dataclass(frozen=True)
class PerModel:
    """A recipe default that depends on the model trained.

    `Recipe.settings(model=...)` replaces it by `function(model)`; its
    `description` stands for it in help texts.

    Example:

    >>> from keras_drelu import DReLU
    >>> import keras
    >>> default = RECIPES["pgd-at"].defaults["inner_gradient"]
    >>> str(default)
    'bpda for a model with capped ReLUs, else exact'
    >>> default(keras.Sequential([keras.Input((2,)), DReLU()]))
    'bpda'

    Args:
        function: Maps the classifier to the setting's value.
        description: What the value is, in words.
    """

    function: object
    description: str

    def __call__(self, model):
        return self.function(model)

    def __str__(self):
        return self.description


INNER_GRADIENT_DEFAULT = PerModel(
    default_inner_gradient, "bpda for a model with capped ReLUs, else exact"
)


def _frozen(mapping):
    return types.MappingProxyType(dict(mapping))


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One training recipe: plain data that `train` follows.

    `train` checks the recipe settings it is given against `arguments`
    (one that does not apply is refused), fills in `defaults`, refuses a
    missing `required` one, and builds the trainer as
    `trainer(classifier, from_logits=..., **settings)`, each setting under
    its trainer keyword; `train`'s `seed` is passed on too when `arguments`
    names `"seed"`. The trainer is then compiled with `loss=None`, so it
    supplies its own loss, as `RobustTraining` does.

    Example:

    >>> recipe = RECIPES["trades"]
    >>> recipe.trainer.__name__, recipe.adversarial, recipe.defaults["beta"]
    ('TRADES', True, 6.0)
    >>> recipe.settings(eps=0.1, beta=1.0)["attack_steps"]
    10

    Args:
        name: The name `train(recipe=...)` takes.
        description: One line saying what it does, for help texts.
        trainer: `None`, to train the classifier itself on the compiled
            loss, or a callable (such as a `RobustTraining` subclass)
            mapping a classifier to the `keras.Model` to fit. Defaults to
            `None`.
        arguments: The arguments of `train` the recipe takes: a mapping
            from each to the trainer's keyword for it, or a sequence of
            names that are both. Defaults to `()`, none.
        defaults: Values of `arguments` used when `train` is not given
            them; a `PerModel` value is worked out for the model trained.
            Defaults to `None`, none.
        required: Arguments `train` must be given. Defaults to `()`.
        adversarial: Whether it trains on attacked inputs; only then may
            natural epochs come first (`train(natural_epochs=...)`).
            Defaults to `False`.
        needs_penalised_caps: Whether the model must hold a `DReLU` layer
            with a non-zero cap penalty (`has_penalised_caps`). Defaults to
            `False`.
        robust_default: Whether it is the recipe that a user who asks for
            robustness at a radius but for no recipe gets (`retrofit
            --eps`); one adversarial recipe of `RECIPES` is. Defaults to
            `False`.
    """

    name: str
    description: str
    trainer: object = None
    arguments: Mapping = ()
    defaults: Mapping = None
    required: tuple = ()
    adversarial: bool = False
    needs_penalised_caps: bool = False
    robust_default: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or self.name == AUTO:
            raise ValueError(
                "Argument `name` should be a non-empty string other than "
                f"{AUTO!r}. Received: name={self.name!r}"
            )
        if self.trainer is not None and not callable(self.trainer):
            raise ValueError(
                "Argument `trainer` should be None or a callable building "
                f"the model to fit. Received: trainer={self.trainer!r}"
            )
        arguments = self.arguments
        if not isinstance(arguments, Mapping):
            arguments = {name: name for name in arguments}
        if self.trainer is None and arguments:
            raise ValueError(
                "A recipe without a trainer takes no arguments. Received: "
                f"arguments={dict(arguments)}"
            )
        defaults = dict(self.defaults or {})
        required = tuple(self.required)
        unknown = [n for n in (*defaults, *required) if n not in arguments]
        if unknown:
            raise ValueError(
                f"Recipe {self.name!r} gives defaults or requirements for "
                f"{unknown}, which are not among its arguments "
                f"{tuple(arguments)}"
            )
        object.__setattr__(self, "arguments", _frozen(arguments))
        object.__setattr__(self, "defaults", _frozen(defaults))
        object.__setattr__(self, "required", required)
        object.__setattr__(
            self, "adversarial", check_bool("adversarial", self.adversarial)
        )
        object.__setattr__(
            self,
            "needs_penalised_caps",
            check_bool("needs_penalised_caps", self.needs_penalised_caps),
        )
        object.__setattr__(
            self, "robust_default",
            check_bool("robust_default", self.robust_default),
        )
        if self.robust_default and not self.adversarial:
            raise ValueError(
                f"Recipe {self.name!r} cannot be the robust default: it is "
                "not adversarial"
            )

    def settings(self, natural_epochs=0, model=None, **given):
        """The settings to train with: `given` over `defaults`.

        Args:
            natural_epochs: Epochs of natural training first, which only
                adversarial recipes allow. Defaults to `0`.
            model: The classifier to train, for the defaults that depend
                on it (`PerModel`). Defaults to `None`: those are left out,
                for the trainer to pick.
            **given: Arguments of `train`; those that are `None` are
                not given.

        Returns:
            A dict from argument name to value, in the order of
            `arguments`.

        Raises:
            ValueError: For a given argument the recipe does not take, a
                required one missing, or natural epochs before a recipe that
                is not adversarial.
        """
        if natural_epochs and not self.adversarial:
            raise ValueError(
                "Argument `natural_epochs` applies to adversarial recipes, "
                f"not to recipe={self.name!r}. Received: "
                f"natural_epochs={natural_epochs}"
            )
        takes = tuple(name for name in self.arguments if name != "seed")
        for name, value in given.items():
            if value is not None and name not in takes:
                raise ValueError(
                    f"Argument `{name}` does not apply to recipe="
                    f"{self.name!r}, which takes {takes or 'no settings'}. "
                    f"Received: {name}={value!r}"
                )
        settings = {}
        for name, value in self.defaults.items():
            if not isinstance(value, PerModel):
                settings[name] = value
            elif model is not None:
                settings[name] = value(model)
        settings.update(
            (name, value) for name, value in given.items() if value is not None
        )
        for name in self.required:
            if settings.get(name) is None:
                meaning = RECIPE_ARGUMENTS.get(name)
                raise ValueError(
                    f"recipe={self.name!r} needs the argument `{name}`"
                    + (f" ({meaning})" if meaning else "")
                    + f". Received: {name}=None"
                )
        return {name: settings[name] for name in takes if name in settings}

    def check_model(self, model):
        """Raises if `model` lacks what the recipe needs."""
        if self.needs_penalised_caps and not has_penalised_caps(model):
            raise ValueError(
                f"recipe={self.name!r} needs a model with at least one DReLU "
                "layer with a non-zero `max_value_regularizer`; found none "
                "(use recipe='standard' to train without cap penalty)"
            )

    def build_trainer(self, classifier, settings, *, from_logits, seed=None):
        """The model that `fit` trains, wrapping `classifier`.

        Args:
            classifier: The Keras classifier.
            settings: What `settings()` returned.
            from_logits: Whether `classifier` outputs logits.
            seed: `train`'s seed, passed on when `arguments` names
                `"seed"`. Defaults to `None`.

        Returns:
            `classifier` itself for a recipe without a trainer, else the
            trainer's model.
        """
        if self.trainer is None:
            return classifier
        keywords = {self.arguments[name]: v for name, v in settings.items()}
        if "seed" in self.arguments:
            keywords[self.arguments["seed"]] = seed
        return self.trainer(classifier, from_logits=from_logits, **keywords)


RECIPES = {}


def register_recipe(
    name,
    trainer=None,
    *,
    description,
    arguments=(),
    defaults=None,
    required=(),
    adversarial=False,
    needs_penalised_caps=False,
    robust_default=False,
):
    """Adds a recipe to `RECIPES`, for `train` and the `retrofit` command.

    Example:

    >>> import keras
    >>> from keras_drelu.training import RobustTraining
    >>> class Noise(RobustTraining):
    ...     def __init__(self, classifier, eps, from_logits=False):
    ...         super().__init__(classifier, eps=eps, step_size=eps,
    ...                          steps=1, norm="linf", from_logits=from_logits)
    ...     def training_batch(self, x, y, sample_weight=None):
    ...         noise = keras.random.uniform(keras.ops.shape(x), -self.eps,
    ...                                      self.eps, seed=self.attack_seed)
    ...         return x + noise, y, sample_weight
    >>> recipe = register_recipe(
    ...     "noise", Noise, arguments=("eps",), required=("eps",),
    ...     description="uniform noise of radius eps")
    >>> "noise" in RECIPES
    True
    >>> del RECIPES["noise"]

    Args:
        name: The recipe's name; not one already registered.
        trainer: `None` or a callable building the trainer, as in
            `Recipe`. Defaults to `None`.
        description: One line saying what it does.
        arguments: The arguments of `train` it takes, as in `Recipe`.
            Defaults to `()`.
        defaults: Their defaults. Defaults to `None`, none.
        required: Those `train` must be given. Defaults to `()`.
        adversarial: Whether it trains on attacked inputs. Defaults to
            `False`.
        needs_penalised_caps: Whether the model needs a penalised `DReLU`.
            Defaults to `False`.
        robust_default: Whether it is the robust default (see `Recipe`);
            of several, the last registered is. Defaults to `False`.

    Returns:
        The new `Recipe`.
    """
    if name in RECIPES:
        raise ValueError(
            f"A recipe named {name!r} is already registered: "
            f"{RECIPES[name].description}"
        )
    recipe = Recipe(
        name=name,
        description=description,
        trainer=trainer,
        arguments=arguments,
        defaults=defaults,
        required=required,
        adversarial=adversarial,
        needs_penalised_caps=needs_penalised_caps,
        robust_default=robust_default,
    )
    RECIPES[name] = recipe
    return recipe


def get_recipe(recipe, model=None):
    """The `Recipe` named `recipe`; `"auto"` picks one for `model`.

    `"auto"` is `"drelu"` for a model with penalised caps
    (`has_penalised_caps`) and `"standard"` otherwise.

    Example:

    >>> get_recipe("pgd-at").adversarial
    True

    Args:
        recipe: A name of `RECIPES`, or `"auto"`.
        model: The classifier to train; needed for `"auto"`. Defaults to
            `None`.

    Returns:
        A `Recipe`.
    """
    check_choice("recipe", recipe, (AUTO, *RECIPES))
    if recipe == AUTO:
        if model is None:
            raise ValueError("recipe='auto' picks a recipe for a model: pass it")
        recipe = "drelu" if has_penalised_caps(model) else "standard"
    return RECIPES[recipe]


_ATTACK = {
    "eps": "eps", "step_size": "step_size", "norm": "norm",
    "inner_gradient": "inner_gradient", "eps_ramp_steps": "eps_ramp_steps",
}
_ATTACK_DEFAULTS = {
    "norm": "linf", "inner_gradient": INNER_GRADIENT_DEFAULT,
    "eps_ramp_steps": 0,
}

register_recipe(
    "standard",
    description="natural training on the compiled cross-entropy",
)
register_recipe(
    "drelu",
    description="natural training; the cap penalty comes from the DReLU "
                "layers' max_value_regularizer",
    needs_penalised_caps=True,
)
register_recipe(
    "pgd-at",
    AdversarialTraining,
    description="PGD adversarial training (Madry et al. 2018)",
    arguments={**_ATTACK, "attack_steps": "steps"},
    defaults={**_ATTACK_DEFAULTS, "attack_steps": 10},
    required=("eps",),
    adversarial=True,
)
register_recipe(
    "fgsm-at",
    FastAdversarialTraining,
    description="fast adversarial training: one FGSM step of 1.25 eps from "
                "a random start (Wong et al. 2020)",
    arguments=_ATTACK,
    defaults=_ATTACK_DEFAULTS,
    required=("eps",),
    adversarial=True,
)
register_recipe(
    "trades",
    TRADES,
    description="clean cross-entropy plus beta times the KL divergence to "
                "PGD inputs (TRADES, Zhang et al. 2019)",
    arguments={**_ATTACK, "attack_steps": "steps", "beta": "beta"},
    defaults={**_ATTACK_DEFAULTS, "attack_steps": 10, "beta": 6.0},
    required=("eps",),
    adversarial=True,
    robust_default=True,
)
register_recipe(
    "mtlat",
    MTLAT,
    description="Mixup, then targeted steps toward a random class "
                "(M-TLAT, Laugros et al. 2020)",
    arguments={
        **_ATTACK, "attack_steps": "steps", "mixup_alpha": "alpha",
        "seed": "seed",
    },
    defaults={**_ATTACK_DEFAULTS, "attack_steps": 1, "mixup_alpha": 0.2},
    required=("eps",),
    adversarial=True,
)
