"""Training recipes for any Keras classifier: natural, D-ReLU, PGD-AT,
fast FGSM-AT, TRADES and M-TLAT, with the D-ReLU paper's optimizer and
callbacks.

`train(model, train_data, validation_data, recipe=..., epochs=...)` is the
one-call entry point; the recipe classes are `keras.Model` wrappers whose
`train_step` perturbs each batch, usable with `compile`/`fit` directly.
"""

from keras_drelu.training.adversarial import AdversarialTraining
from keras_drelu.training.adversarial import FastAdversarialTraining
from keras_drelu.training.callbacks import paper_callbacks
from keras_drelu.training.callbacks import paper_optimizer
from keras_drelu.training.experiment import RECIPES
from keras_drelu.training.experiment import train
from keras_drelu.training.experiment import train_repeated
from keras_drelu.training.mtlat import MTLAT
from keras_drelu.training.robust_training import RobustTraining
from keras_drelu.training.strategy import STRATEGIES
from keras_drelu.training.strategy import get_strategy
from keras_drelu.training.trades import TRADES

__all__ = [
    "AdversarialTraining",
    "FastAdversarialTraining",
    "MTLAT",
    "RECIPES",
    "RobustTraining",
    "STRATEGIES",
    "TRADES",
    "get_strategy",
    "paper_callbacks",
    "paper_optimizer",
    "train",
    "train_repeated",
]
