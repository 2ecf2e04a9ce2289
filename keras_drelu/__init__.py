"""Capped, learnable-cap ReLU defences for Keras 3."""

from keras_drelu.calibration import calibrate_caps
from keras_drelu.inspection import max_values
from keras_drelu.layers import ACTIVATIONS
from keras_drelu.layers import SPLASH
from keras_drelu.layers import DReLU
from keras_drelu.layers import SReLU
from keras_drelu.layers import make_activation
from keras_drelu.layers import straight_through
from keras_drelu.regularizers import MaxValueRegularizer
from keras_drelu.transforms import uncapped_twin
from keras_drelu.transforms import with_gradient_mode

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "DReLU",
    "MaxValueRegularizer",
    "SPLASH",
    "SReLU",
    "calibrate_caps",
    "make_activation",
    "max_values",
    "straight_through",
    "uncapped_twin",
    "with_gradient_mode",
]
