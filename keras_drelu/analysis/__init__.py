"""Tools that look inside a model under attack (Sooksatra et al., 2023)."""

from keras_drelu.outputs import logits_model
from keras_drelu.analysis.perturbation_growth import PerturbationGrowth
from keras_drelu.analysis.perturbation_growth import perturbation_growth
from keras_drelu.analysis.perturbation_growth import plot_perturbation_growth
from keras_drelu.analysis.sensitivity_map import SensitivityMaps
from keras_drelu.analysis.sensitivity_map import plot_sensitivity_maps
from keras_drelu.analysis.sensitivity_map import sensitivity_map
from keras_drelu.analysis.zero_gradient import ZeroGradientDistance
from keras_drelu.analysis.zero_gradient import zero_gradient_distance

__all__ = [
    "PerturbationGrowth",
    "SensitivityMaps",
    "ZeroGradientDistance",
    "logits_model",
    "perturbation_growth",
    "plot_perturbation_growth",
    "plot_sensitivity_maps",
    "sensitivity_map",
    "zero_gradient_distance",
]
