"""Training recipes for any Keras classifier: natural, D-ReLU, PGD-AT,
fast FGSM-AT, TRADES and M-TLAT, with the D-ReLU paper's optimizer and
callbacks.

`train(model, train_data, validation_data, recipe=..., epochs=...)` is the
one-call entry point and returns a `TrainingResult`. The recipes are the
entries of `RECIPES`, and `register_recipe` adds one; the trainers are
`keras.Model` wrappers whose training step perturbs each batch
(`training_batch`) before Keras' own step, usable with `compile`/`fit`
directly, on the TensorFlow and JAX backends (`steps`); their attack sees
through capped ReLUs (`inner_gradient`) while the update follows the exact
gradient. Training logs the task loss (`task_loss`) apart from the cap
penalty (`cap_penalty`), and the paper's callbacks watch the task.
"""

from keras_drelu.training.adversarial import AdversarialTraining
from keras_drelu.training.adversarial import FastAdversarialTraining
from keras_drelu.training.callbacks import CapPenaltyLogger
from keras_drelu.training.callbacks import paper_callbacks
from keras_drelu.training.callbacks import paper_optimizer
from keras_drelu.training.callbacks import task_loss_metric
from keras_drelu.training.caps import cap_penalty
from keras_drelu.training.caps import contains_caps
from keras_drelu.training.caps import has_penalised_caps
from keras_drelu.training.experiment import TrainingResult
from keras_drelu.training.experiment import build_metrics
from keras_drelu.training.experiment import train
from keras_drelu.training.experiment import train_repeated
from keras_drelu.training.mtlat import MTLAT
from keras_drelu.training.recipes import RECIPE_ARGUMENTS
from keras_drelu.training.recipes import RECIPES
from keras_drelu.training.recipes import PerModel
from keras_drelu.training.recipes import Recipe
from keras_drelu.training.recipes import get_recipe
from keras_drelu.training.recipes import register_recipe
from keras_drelu.training.robust_training import INNER_GRADIENTS
from keras_drelu.training.robust_training import RobustTraining
from keras_drelu.training.strategy import STRATEGIES
from keras_drelu.training.strategy import get_strategy
from keras_drelu.training.trades import TRADES

__all__ = [
    "AdversarialTraining",
    "CapPenaltyLogger",
    "FastAdversarialTraining",
    "INNER_GRADIENTS",
    "MTLAT",
    "PerModel",
    "RECIPES",
    "RECIPE_ARGUMENTS",
    "Recipe",
    "RobustTraining",
    "STRATEGIES",
    "TRADES",
    "TrainingResult",
    "build_metrics",
    "cap_penalty",
    "contains_caps",
    "get_recipe",
    "get_strategy",
    "has_penalised_caps",
    "paper_callbacks",
    "paper_optimizer",
    "register_recipe",
    "task_loss_metric",
    "train",
    "train_repeated",
]
