"""The JAX side of `keras_drelu.backends`."""

import jax
import keras
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

from keras_drelu import backends

HASH_DTYPE = "uint32"


def value_and_grad(fn, x):
    (value, aux), grad = jax.value_and_grad(fn, has_aux=True)(x)
    return value, aux, grad


def _stateless(fn, variables):
    """`fn` as a pure function of the variables' values and its arguments.

    The model reads its weights from the scope, as tracers of the compiled
    function's arguments: they are never baked into the trace, and new
    weights (a model trained further) need no new trace.
    """

    def pure(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return fn(*args)

    return pure


def compile(fn, variables):
    jitted = jax.jit(_stateless(fn, variables))

    def call(*args):
        return jitted([v.value for v in variables], *args)

    return call


def model_pass(model, x, variant):
    del variant
    return model(x, training=False)


def fuse(fn):
    return fn


def padded_size(n):
    # XLA compiles one program per shape: batches padded to the next power
    # of two share a few of them.
    return 1 << (n - 1).bit_length()


def random_uniform(shape, minval, maxval, dtype, seed):
    return keras.random.uniform(shape, minval, maxval, dtype, seed=seed)


def random_normal(shape, dtype, seed):
    return keras.random.normal(shape, dtype=dtype, seed=seed)


class Distribution(backends.Distribution):
    """Shards the batch axis over a one-dimensional mesh of devices.

    The function is compiled once for the whole batch; XLA partitions it
    (GSPMD), each device computing its rows, with the weights replicated.
    """

    def __init__(self, devices):
        self.mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
        self.replicas = len(devices)

    def compile(self, fn, variables):
        jitted = jax.jit(_stateless(fn, variables))
        rows = NamedSharding(self.mesh, PartitionSpec("batch"))
        whole = NamedSharding(self.mesh, PartitionSpec())

        def call(*args):
            values = [jax.device_put(v.value, whole) for v in variables]
            return jitted(values, *[jax.device_put(a, rows) for a in args])

        return call


def _device(name):
    if isinstance(name, jax.Device):
        return name
    platform, _, number = str(name).partition(":")
    for device in jax.devices(platform):
        if device.id == int(number or 0):
            return device
    raise ValueError(f"No JAX device {name!r}; devices: {jax.devices()}")


def distribution(spec):
    if spec is True:
        return Distribution(jax.local_devices())
    if isinstance(spec, keras.distribution.DataParallel):
        devices = spec.device_mesh.devices.flatten()
        return Distribution([_device(d) for d in devices])
    raise ValueError(
        "Argument `distribute` should be None, True or a "
        "`keras.distribution.DataParallel` on the JAX backend. Received: "
        f"distribute={spec!r}"
    )
