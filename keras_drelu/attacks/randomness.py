"""Random numbers keyed by seed, input and draw, the same on every backend.

An attack's randomness is a function of its seed, the place of the input in
the `generate` call, the stream (one per run of an attack made of several
compiled runs: a restart, a target class) and which draw it is within the
run (the iteration). Each number is a hash of them (Wellons' `lowbias32`,
computed in `keras.ops`), not the output of a stateful generator, so it does
not depend on the backend, on the batch size, on how a batch is split over
devices, or on which other inputs share the batch.

The keys of a batch are a numpy array `(batch, 3)`: the seed, the place of
each input and the stream (`keys`, `stream`), passed to compiled functions
with the inputs.

Example:

>>> import keras
>>> k = keys(seed=0, n=3)
>>> u = keras.ops.convert_to_numpy(uniform(k, (2,)))
>>> u.shape, bool((u >= 0).all() and (u < 1).all())
((3, 2), True)
>>> v = keras.ops.convert_to_numpy(uniform(k[1:], (2,)))  # the same inputs
>>> bool((u[1:] == v).all())
True
"""

import numpy as np
from keras import ops

from keras_drelu import backends

_MASK = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def keys(seed, n):
    """The keys of `n` inputs at places `0, ..., n - 1`, stream 0.

    Args:
        seed: An int seed (its low 32 bits are used).
        n: Number of inputs.

    Returns:
        A numpy array `(n, 3)` of the backend's hash dtype.
    """
    columns = [np.full(n, int(seed) & _MASK), np.arange(n), np.zeros(n)]
    return np.stack(columns, axis=1).astype(backends.hash_dtype())


def stream(keys, number):
    """`keys` (numpy) moved to stream `number`."""
    keys = np.array(keys)
    keys[:, 2] = number
    return keys


def _dtype():
    return backends.hash_dtype()


def _int(value):
    return ops.cast(value, _dtype())


def _add(a, b):
    total = a + b
    return total if _dtype() == "uint32" else ops.bitwise_and(total, _MASK)


def _multiply(a, constant):
    product = ops.multiply(a, _int(constant))
    # A 64-bit hash dtype (PyTorch) keeps the low 32 bits, as uint32 does.
    return product if _dtype() == "uint32" else ops.bitwise_and(product, _MASK)


def _mix(h):
    """Wellons' `lowbias32`: a bijection of 32-bit integers."""
    h = ops.bitwise_xor(h, ops.right_shift(h, _int(16)))
    h = _multiply(h, 0x7FEB352D)
    h = ops.bitwise_xor(h, ops.right_shift(h, _int(15)))
    h = _multiply(h, 0x846CA68B)
    return ops.bitwise_xor(h, ops.right_shift(h, _int(16)))


def _bits(keys, shape, draw):
    """32 random bits per entry, `(batch, *shape)`."""
    keys = ops.convert_to_tensor(keys)
    size = int(np.prod(shape, dtype="int64"))
    draw = _mix(_multiply(_add(_int(draw), _int(1)), _GOLDEN))
    row = _mix(ops.bitwise_xor(keys[:, 0], draw))
    for column in (1, 2):
        key = _mix(_add(keys[:, column], _int(_GOLDEN * column & _MASK)))
        row = _mix(ops.bitwise_xor(row, key))
    entries = _mix(_add(_int(ops.arange(size, dtype="int32")), _int(_GOLDEN)))
    bits = _mix(ops.bitwise_xor(row[:, None], entries[None, :]))
    return ops.reshape(bits, (-1, *shape))


def uniform(keys, shape, draw=0, minval=0.0, maxval=1.0):
    """Uniform float32 numbers in `[minval, maxval)`, `(batch, *shape)`.

    Args:
        keys: The inputs' keys `(batch, 3)` (`keys`, `stream`).
        shape: Shape of the numbers of one input.
        draw: Which draw (an int or a scalar integer tensor): different
            draws of the same keys are independent. Defaults to `0`.
        minval: Lower bound. Defaults to `0.0`.
        maxval: Upper bound. Defaults to `1.0`.
    """
    bits = ops.right_shift(_bits(keys, shape, draw), _int(8))
    unit = ops.cast(bits, "float32") * (2.0**-24)
    return minval + (maxval - minval) * unit


def normal(keys, shape, draw=0):
    """Standard normal float32 numbers (Box-Muller), `(batch, *shape)`."""
    both = uniform(keys, (2, *shape), draw)
    radius = ops.sqrt(-2.0 * ops.log(1.0 - both[:, 0]))
    return radius * ops.cos((2.0 * np.pi) * both[:, 1])


def signs(keys, shape, draw=0):
    """`-1.0` or `1.0` with equal odds, `(batch, *shape)`."""
    return ops.where(uniform(keys, shape, draw) < 0.5, -1.0, 1.0)


def shared_uniform(keys, shape=(), draw=0):
    """Uniform numbers in `[0, 1)` that every input of the batch shares.

    Drawn from the seed and stream alone, so that every part of a split
    batch draws the same ones.
    """
    keys = ops.convert_to_tensor(keys)
    shared = ops.stack([keys[0, 0], ops.zeros((), keys.dtype), keys[0, 2]])
    return uniform(shared[None], shape, draw)[0]

