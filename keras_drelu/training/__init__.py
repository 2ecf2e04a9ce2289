"""Training recipes for any Keras classifier: natural, D-ReLU, PGD-AT,
fast FGSM-AT, TRADES and M-TLAT, with the D-ReLU paper's optimizer and
callbacks.

`train(model, train_data, validation_data, recipe=..., epochs=...)` is the
one-call entry point and returns a `TrainingResult`. The recipes are the
entries of `RECIPES`, and `register_recipe` adds one; the trainers are
`keras.Model` wrappers whose `train_step` perturbs each batch, usable with
`compile`/`fit` directly.
"""

from keras_drelu.training.adversarial import AdversarialTraining
from keras_drelu.training.adversarial import FastAdversarialTraining
from keras_drelu.training.callbacks import paper_callbacks
from keras_drelu.training.callbacks import paper_optimizer
from keras_drelu.training.experiment import TrainingResult
from keras_drelu.training.experiment import train
from keras_drelu.training.experiment import train_repeated
from keras_drelu.training.mtlat import MTLAT
from keras_drelu.training.recipes import RECIPE_ARGUMENTS
from keras_drelu.training.recipes import RECIPES
from keras_drelu.training.recipes import Recipe
from keras_drelu.training.recipes import get_recipe
from keras_drelu.training.recipes import has_penalised_caps
from keras_drelu.training.recipes import register_recipe
from keras_drelu.training.robust_training import RobustTraining
from keras_drelu.training.strategy import STRATEGIES
from keras_drelu.training.strategy import get_strategy
from keras_drelu.training.trades import TRADES

__all__ = [
    "AdversarialTraining",
    "FastAdversarialTraining",
    "MTLAT",
    "RECIPES",
    "RECIPE_ARGUMENTS",
    "Recipe",
    "RobustTraining",
    "STRATEGIES",
    "TRADES",
    "TrainingResult",
    "get_recipe",
    "get_strategy",
    "has_penalised_caps",
    "paper_callbacks",
    "paper_optimizer",
    "register_recipe",
    "train",
    "train_repeated",
]
