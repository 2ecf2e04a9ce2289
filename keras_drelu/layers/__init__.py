from keras_drelu.layers.activations import ACTIVATIONS
from keras_drelu.layers.activations import ActivationSpec
from keras_drelu.layers.activations import make_activation
from keras_drelu.layers.drelu import DReLU
from keras_drelu.layers.splash import SPLASH
from keras_drelu.layers.srelu import SReLU
from keras_drelu.layers.straight_through import straight_through
