"""Adversarial attacks on Keras models, on TensorFlow, JAX or PyTorch."""

from keras_drelu.attacks.adaptive import BPDA
from keras_drelu.attacks.adaptive import Transfer
from keras_drelu.attacks.apgd import APGD
from keras_drelu.attacks.apgd import APGDT
from keras_drelu.attacks.base import Attack
from keras_drelu.attacks.cw import CarliniWagnerL2
from keras_drelu.attacks.fab import FABT
from keras_drelu.attacks.fgsm import FGSM
from keras_drelu.attacks.losses import cross_entropy
from keras_drelu.attacks.losses import dlr
from keras_drelu.attacks.losses import margin
from keras_drelu.attacks.losses import targeted_dlr
from keras_drelu.attacks.pgd import PGD
from keras_drelu.attacks.pgd import projected_gradient_descent
from keras_drelu.attacks.square import Square
from keras_drelu.attacks.targets import target_classes

__all__ = [
    "APGD",
    "APGDT",
    "Attack",
    "BPDA",
    "CarliniWagnerL2",
    "FABT",
    "FGSM",
    "PGD",
    "Square",
    "Transfer",
    "cross_entropy",
    "dlr",
    "margin",
    "projected_gradient_descent",
    "target_classes",
    "targeted_dlr",
]
