"""A tiny stand-in for a registry backbone, for tests of the `retrofit` run.

`retrofit.run._build` builds the run's model around the backbone the
command names (MobileNetV2 in the tests); tracing a real backbone's steps
takes seconds each and is not what most run tests are about. Tests that
replace `_build` with `tiny_retrofit` (with `monkeypatch`, or in the
interpreters they start, which import this file from `tests/`) train and
evaluate the same head, placement and caps around one small convolution.
"""

import keras

from retrofit.placements import build_retrofit_model


def tiny_retrofit(settings, info):
    """The run's model, as `retrofit.run._build` makes it from `settings`
    and the data's `info`, around a one-convolution stand-in backbone (its
    weights setting is not used)."""
    backbone = keras.Sequential(
        [keras.Input((None, None, 3)), keras.layers.Conv2D(4, 3)], name="tiny"
    )
    return build_retrofit_model(
        backbone, info.image_shape, info.num_classes,
        placement=settings.placement, activation=settings.activation,
        units=settings.units, lam=settings.lam,
        initial_max_value=settings.initial_max_value,
        max_value=settings.max_value,
    )
