"""The activations a network can be built with, by name: one table.

`ACTIVATIONS` maps each name to its layer, the settings it takes and their
defaults; `make_activation` builds one. Retrofit models and the paper
reproductions build their activations through it, so that a new activation
is one entry here.
"""

import dataclasses
import types
from collections.abc import Mapping

import keras

from keras_drelu.arguments import check_choice
from keras_drelu.layers.drelu import DReLU
from keras_drelu.layers.splash import SPLASH
from keras_drelu.layers.srelu import SReLU


@dataclasses.dataclass(frozen=True)
class ActivationSpec:
    """One activation of `ACTIVATIONS`: plain data for `make_activation`.

    Args:
        name: The name `make_activation` takes.
        layer: The layer class (or a callable building the layer from
            keyword arguments).
        description: One line saying what it is, for help texts.
        settings: The settings it takes, each mapped to the layer's keyword
            for it. Defaults to `{}`, none.
        defaults: Values of `settings` used when not given. Defaults to
            `{}`.
        required: Settings that must be given. Defaults to `()`.
    """

    name: str
    layer: object
    description: str
    settings: Mapping = dataclasses.field(default_factory=dict)
    defaults: Mapping = dataclasses.field(default_factory=dict)
    required: tuple = ()

    def __post_init__(self):
        object.__setattr__(
            self, "settings", types.MappingProxyType(dict(self.settings))
        )
        object.__setattr__(
            self, "defaults", types.MappingProxyType(dict(self.defaults))
        )
        object.__setattr__(self, "required", tuple(self.required))


ACTIVATIONS = {
    spec.name: spec
    for spec in (
        ActivationSpec(
            "drelu",
            DReLU,
            "a learnable cap per unit, penalised by lam * sum(m**2) (DReLU)",
            settings={
                "lam": "max_value_regularizer",
                "initial_max_value": "initial_max_value",
            },
            defaults={"lam": 1e-3, "initial_max_value": 100.0},
        ),
        ActivationSpec(
            "srelu",
            SReLU,
            "a ReLU capped at a fixed max_value (SReLU)",
            settings={"max_value": "max_value"},
            required=("max_value",),
        ),
        ActivationSpec("relu", keras.layers.ReLU, "the plain ReLU, no cap"),
        ActivationSpec(
            "splash",
            SPLASH,
            "a learnable piecewise-linear activation (SPLASH, Tavakoli et "
            "al. 2021)",
        ),
    )
}


def make_activation(activation, *, name=None, **settings):
    """A new activation layer of `ACTIVATIONS`, by name.

    A setting passed as `None` counts as not given, so that callers can pass
    the settings they hold through unchanged; any other setting that the
    activation does not take is refused, as is a required one missing.

    Example:

    >>> layer = make_activation("drelu", name="cap", lam=0.01)
    >>> type(layer).__name__, layer.name, layer.max_value_regularizer.lam
    ('DReLU', 'cap', 0.01)
    >>> type(make_activation("relu", lam=None)).__name__
    'ReLU'
    >>> make_activation("relu", lam=0.01)
    Traceback (most recent call last):
    ...
    ValueError: Argument `lam` does not apply to activation='relu', which takes no settings. Received: lam=0.01

    Args:
        activation: A name of `ACTIVATIONS`: `"drelu"`, `"srelu"`,
            `"relu"` or `"splash"`.
        name: The layer's name. Defaults to `None`, Keras' automatic name.
        **settings: The activation's settings: `lam` and
            `initial_max_value` for `"drelu"` (defaults `1e-3` and
            `100.0`), `max_value` for `"srelu"` (required).

    Returns:
        A new, unbuilt Keras layer.
    """
    spec = ACTIVATIONS[check_choice("activation", activation, ACTIVATIONS)]
    for setting, value in settings.items():
        if value is not None and setting not in spec.settings:
            takes = tuple(spec.settings) or "no settings"
            raise ValueError(
                f"Argument `{setting}` does not apply to activation="
                f"{activation!r}, which takes {takes}. Received: "
                f"{setting}={value!r}"
            )
    given = {**spec.defaults}
    given.update((k, v) for k, v in settings.items() if v is not None)
    for setting in spec.required:
        if setting not in given:
            raise ValueError(
                f"activation={activation!r} needs the argument `{setting}`. "
                f"Received: {setting}=None"
            )
    keywords = {spec.settings[k]: v for k, v in given.items()}
    return spec.layer(name=name, **keywords)
