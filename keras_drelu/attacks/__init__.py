"""Adversarial attacks on Keras models (TensorFlow backend)."""

from keras_drelu.attacks.pgd import projected_gradient_descent
