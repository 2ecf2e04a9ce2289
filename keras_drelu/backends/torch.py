"""The PyTorch side of `keras_drelu.backends`: eager, one device."""

import keras
import torch

# PyTorch lacks shifts of uint32; int64 holds the 32-bit hash instead.
HASH_DTYPE = "int64"


def value_and_grad(fn, x):
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        value, aux = fn(x)
    grad = None
    if value.requires_grad:
        (grad,) = torch.autograd.grad(value, x, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(x)
    aux = keras.tree.map_structure(
        lambda t: t.detach() if isinstance(t, torch.Tensor) else t, aux
    )
    return value.detach(), aux, grad


def compile(fn, variables):
    del variables

    def call(*args):
        with torch.no_grad():
            return fn(*args)

    return call


def model_pass(model, x, variant):
    del variant
    return model(x, training=False)


def fuse(fn):
    return fn


def padded_size(n):
    return n


def random_uniform(shape, minval, maxval, dtype, seed):
    return keras.random.uniform(shape, minval, maxval, dtype, seed=seed)


def random_normal(shape, dtype, seed):
    return keras.random.normal(shape, dtype=dtype, seed=seed)


def distribution(spec):
    raise ValueError(
        "Argument `distribute` should be None on the PyTorch backend, which "
        f"runs on one device here. Received: distribute={spec!r}"
    )
