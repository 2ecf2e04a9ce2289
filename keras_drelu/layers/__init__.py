from keras_drelu.layers.drelu import DReLU
from keras_drelu.layers.srelu import SReLU
