"""Robustness evaluation: attack suites, masking checks, reports."""

from keras_drelu.evaluation.checks import FLAG_DOCS
from keras_drelu.evaluation.report import AttackResult
from keras_drelu.evaluation.report import Flag
from keras_drelu.evaluation.report import RobustnessReport
from keras_drelu.evaluation.robustness import contains_capped_relu
from keras_drelu.evaluation.robustness import evaluate_robustness
from keras_drelu.evaluation.suites import ATTACKS
from keras_drelu.evaluation.suites import SUITES
from keras_drelu.evaluation.suites import Suite
from keras_drelu.evaluation.suites import build_attack
from keras_drelu.evaluation.sweep import EpsSweep
from keras_drelu.evaluation.sweep import eps_sweep

__all__ = [
    "ATTACKS",
    "AttackResult",
    "EpsSweep",
    "FLAG_DOCS",
    "Flag",
    "RobustnessReport",
    "SUITES",
    "Suite",
    "build_attack",
    "contains_capped_relu",
    "eps_sweep",
    "evaluate_robustness",
]
