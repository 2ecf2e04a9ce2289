"""Robustness evaluation: attack suites, masking checks, reports.

`evaluate_robustness` runs the steps in order; each is usable on its own:
`evaluation_inputs` (arrays or a `tf.data.Dataset`), `build_suite`,
`run_cascade`, `run_checks` and `assemble_report`. `EvaluationState` saves
their progress, so that a killed evaluation continues.
"""

from keras_drelu.evaluation.cascade import Cascade
from keras_drelu.evaluation.cascade import CascadeResult
from keras_drelu.evaluation.cascade import run_cascade
from keras_drelu.evaluation.checks import CHECKS
from keras_drelu.evaluation.checks import FLAG_DOCS
from keras_drelu.evaluation.checks import run_checks
from keras_drelu.evaluation.inputs import evaluation_inputs
from keras_drelu.evaluation.inputs import examples_from_dataset
from keras_drelu.evaluation.report import AttackResult
from keras_drelu.evaluation.report import Flag
from keras_drelu.evaluation.report import RobustnessReport
from keras_drelu.evaluation.report import assemble_report
from keras_drelu.evaluation.robustness import evaluate_robustness
from keras_drelu.evaluation.state import EvaluationState
from keras_drelu.evaluation.state import EvaluationStateError
from keras_drelu.evaluation.suites import ATTACKS
from keras_drelu.evaluation.suites import SUITES
from keras_drelu.evaluation.suites import Suite
from keras_drelu.evaluation.suites import build_attack
from keras_drelu.evaluation.suites import build_suite
from keras_drelu.evaluation.sweep import EpsSweep
from keras_drelu.evaluation.sweep import eps_sweep
from keras_drelu.inspection import contains_capped_relu

__all__ = [
    "ATTACKS",
    "AttackResult",
    "CHECKS",
    "Cascade",
    "CascadeResult",
    "EpsSweep",
    "EvaluationState",
    "EvaluationStateError",
    "FLAG_DOCS",
    "Flag",
    "RobustnessReport",
    "SUITES",
    "Suite",
    "assemble_report",
    "build_attack",
    "build_suite",
    "contains_capped_relu",
    "eps_sweep",
    "evaluate_robustness",
    "evaluation_inputs",
    "examples_from_dataset",
    "run_cascade",
    "run_checks",
]
