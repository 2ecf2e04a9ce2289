"""A scope in which every capped ReLU passes its input gradient straight on.

Inside `with straight_through():` a `DReLU` or `SReLU` behaves as with
`gradient_mode="bpda"`: same outputs, the plain ReLU's gradient with respect
to its input. The model and its weights are the same objects as outside the
scope, so one training step can attack through the caps (inside) and update
the weights with the exact gradient (outside), which a copy of the model
made by `with_gradient_mode` cannot do.

The switch is read when a layer is called, in Python. Under `tf.function`
or `jax.jit` that is when the function is traced, so the scope must be
entered inside the compiled function (as the training recipes and the BPDA
attack do), or around the first call of a function compiled for it alone.
"""

import contextlib
import contextvars

_ACTIVE = contextvars.ContextVar("keras_drelu_straight_through", default=False)


@contextlib.contextmanager
def straight_through(enabled=True):
    """Capped ReLUs called in this scope pass input gradients straight on.

    Example:

    >>> import keras, numpy as np, tensorflow as tf
    >>> from keras_drelu import SReLU
    >>> layer = SReLU(0.5)
    >>> x = tf.constant([[2.0]])
    >>> with tf.GradientTape(persistent=True) as tape:
    ...     tape.watch(x)
    ...     exact = layer(x)
    ...     with straight_through():
    ...         through = layer(x)
    >>> float(exact[0, 0]), float(through[0, 0])
    (0.5, 0.5)
    >>> float(tape.gradient(exact, x)[0, 0]), float(tape.gradient(through, x)[0, 0])
    (0.0, 1.0)

    Args:
        enabled: Whether the scope switches straight-through on; `False`
            makes it a no-op (or switches it off inside an enclosing
            scope). Defaults to `True`.

    Yields:
        Nothing; the scope lasts for the `with` block.
    """
    token = _ACTIVE.set(bool(enabled))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def straight_through_active():
    """Whether the innermost `straight_through` scope is switched on."""
    return _ACTIVE.get()
