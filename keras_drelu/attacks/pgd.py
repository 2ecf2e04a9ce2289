"""Projected gradient descent (Madry et al., 2018), L-inf and L2.

`projected_gradient_descent` is the graph-friendly core: a function of a
per-example loss in `keras.ops`, used both by the `PGD` attack and inside
the `train_step` of adversarial training, on any backend
(`keras_drelu.backends`). Written by hand because no library offers a Keras
3 attack that compiles into a `tf.function` or a `jax.jit`.
"""

import functools

import numpy as np
from keras import ops

from keras_drelu import backends
from keras_drelu.arguments import check_bool
from keras_drelu.arguments import check_choice
from keras_drelu.arguments import check_positive
from keras_drelu.attacks import randomness
from keras_drelu.attacks.base import NORMS
from keras_drelu.attacks.base import Attack
from keras_drelu.attacks.losses import cross_entropy
from keras_drelu.attacks.losses import misclassified


def _check_norm(norm):
    return check_choice("norm", norm, NORMS)


def _per_example_l2(t):
    axes = tuple(range(1, len(t.shape)))
    return ops.sqrt(ops.sum(ops.square(t), axis=axes, keepdims=True))


def expand_like(mask, x):
    """`mask` of shape `(batch,)` reshaped to broadcast against `x`."""
    return ops.reshape(mask, (-1,) + (1,) * (len(x.shape) - 1))


def project(delta, eps, norm):
    """Projects `delta` onto the `norm` ball of radius `eps`, per example."""
    if norm == "linf":
        return ops.clip(delta, -eps, eps)
    norms = _per_example_l2(delta)
    return delta * ops.minimum(1.0, eps / ops.maximum(norms, 1e-12))


def constrain(z, x, eps, norm, clip_values):
    """`z` projected onto the `norm` ball of radius `eps` around `x`, then
    clipped to `clip_values`: a point of the threat model."""
    low, high = clip_values
    return ops.clip(x + project(z - x, eps, norm), low, high)


def _ball(features, eps, norm, uniform, normal):
    """A uniformly drawn point of the `norm` ball of radius `eps`, per row.

    `uniform(shape)` and `normal(shape)` draw numbers of `shape` for every
    row, `(batch, *shape)`.
    """
    if norm == "linf":
        return eps * (2.0 * uniform(features) - 1.0)
    direction = normal(features)
    direction = direction / ops.maximum(_per_example_l2(direction), 1e-12)
    dims = float(np.prod(features))
    radius = eps * uniform((1,) * len(features)) ** (1.0 / dims)
    return direction * radius


def random_start(x, eps, norm, seed=None):
    """A uniformly drawn point of the `norm` ball of radius `eps` around 0.

    Seeded as `keras_drelu.backends.random_uniform`: `None`, an int (on
    TensorFlow an op-level seed, new numbers on every call of a compiled
    function) or a `keras.random.SeedGenerator` (what a `jax.jit`-compiled
    training step needs).
    """
    x = ops.convert_to_tensor(x)
    batch = ops.shape(x)[0]

    def uniform(shape):
        return backends.random_uniform((batch, *shape), dtype=x.dtype, seed=seed)

    def normal(shape):
        return backends.random_normal((batch, *shape), dtype=x.dtype, seed=seed)

    return _ball(tuple(x.shape[1:]), eps, norm, uniform, normal)


def keyed_start(x, keys, eps, norm, draw=0):
    """`random_start` drawn from the inputs' keys (`randomness`)."""

    def uniform(shape):
        return randomness.uniform(keys, shape, draw)

    def normal(shape):
        return randomness.normal(keys, shape, draw)

    return _ball(tuple(x.shape[1:]), eps, norm, uniform, normal)


def ascent_direction(grad, norm):
    """The steepest-ascent step of unit `norm` for gradient `grad`."""
    if norm == "linf":
        return ops.sign(grad)
    return grad / ops.maximum(_per_example_l2(grad), 1e-12)


def ascend(loss_fn, x, y, x_start, *, eps, step_size, steps, norm, clip_values):
    """`steps` projected ascent steps on `loss_fn` from `x_start`.

    The loop of `projected_gradient_descent`, from a given start.
    """

    def loss(x_adv):
        return ops.sum(loss_fn(x_adv, y)), None

    # The step after the gradient, in one kernel (`backends.fuse`). `eps`
    # and `step_size` are tensors: a training recipe ramps them, and attacks
    # of other radii share the kernel. XLA sums in another order than
    # TensorFlow's kernels, so a fused L2 step would move the examples by a
    # rounding error: only L-inf's step, exact either way, is fused.
    move = (backends.fuse if norm == "linf" else functools.partial)(
        _step, norm=norm, clip_values=clip_values)
    eps = ops.convert_to_tensor(eps, x.dtype)
    step_size = ops.convert_to_tensor(step_size, x.dtype)

    def step(i, x_adv):
        _, _, grad = backends.value_and_grad(loss, x_adv)
        return move(x_adv, grad, x, eps, step_size)

    return ops.stop_gradient(ops.fori_loop(0, steps, step, x_start))


def _step(x_adv, grad, x, eps, step_size, *, norm, clip_values):
    """One projected ascent step from `x_adv` along `grad`."""
    x_adv = x_adv + step_size * ascent_direction(grad, norm)
    return constrain(x_adv, x, eps, norm, clip_values)


def projected_gradient_descent(
    loss_fn,
    x,
    y,
    *,
    eps,
    step_size,
    steps,
    norm="linf",
    random_init=True,
    clip_values=(0.0, 1.0),
    seed=None,
):
    """Maximises `loss_fn` within the `norm` ball of radius `eps` around `x`.

    Runs on any backend and inside any compiled function: on JAX, inside a
    jitted `train_step`, `loss_fn` calls the model with the step's variable
    values (`model.stateless_call`, or a `keras.StatelessScope` mapping
    them), and `seed` is a `keras.random.SeedGenerator` of the traced
    state.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> def loss_fn(x_adv, y):
    ...     return keras.losses.sparse_categorical_crossentropy(
    ...         y, model(x_adv), from_logits=True)
    >>> x = np.full((3, 2), 0.5, "float32")
    >>> x_adv = projected_gradient_descent(
    ...     loss_fn, x, np.zeros(3, "int32"), eps=0.1, step_size=0.05, steps=3)
    >>> bool(np.abs(keras.ops.convert_to_numpy(x_adv) - x).max() <= 0.1 + 1e-6)
    True

    Args:
        loss_fn: `loss_fn(x_adv, y)` returning one loss per example; its
            gradient with respect to `x_adv` drives the ascent.
        x: Batch of clean inputs.
        y: Whatever `loss_fn` needs besides the inputs (labels, clean
            outputs).
        eps: Radius of the threat model.
        step_size: Length of each step in `norm`.
        steps: Number of ascent steps.
        norm: `"linf"` or `"l2"`. Defaults to `"linf"`.
        random_init: Whether to start from a random point of the ball.
            Defaults to `True`.
        clip_values: `(low, high)` range of valid inputs. Defaults to
            `(0.0, 1.0)`.
        seed: Seed of the random start: `None`, an int or a
            `keras.random.SeedGenerator` (see `random_start`). Defaults to
            `None`.

    Returns:
        The adversarial batch, with no gradient attached.
    """
    _check_norm(norm)
    x = ops.convert_to_tensor(x)
    low, high = clip_values
    x_start = x
    if random_init:
        x_start = ops.clip(x + random_start(x, eps, norm, seed), low, high)
    return ascend(
        loss_fn, x, y, x_start, eps=eps, step_size=step_size, steps=steps,
        norm=norm, clip_values=clip_values,
    )


class PGD(Attack):
    """Projected gradient descent on the cross-entropy, with restarts.

    Runs `projected_gradient_descent` on the model's cross-entropy `restarts`
    times; an input fooled by one restart keeps that adversarial example,
    the others get the next restart.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.full((2, 4), 0.5, "float32")
    >>> attack = PGD(model, eps=0.1, steps=5, seed=0)
    >>> bool(np.abs(attack.generate(x, np.array([0, 1])) - x).max() <= 0.1 + 1e-6)
    True

    Args:
        model: A Keras classifier.
        eps: Radius of the threat model.
        steps: Ascent steps per restart. Defaults to `20`.
        step_size: Length of each step. Defaults to `None`, meaning
            `2.5 * eps / steps` (Madry et al., 2018).
        restarts: Number of random restarts. Defaults to `1`.
        random_init: Whether each restart starts at a random point of the
            ball. Defaults to `True`.
        **kwargs: `norm`, `clip_values`, `outputs`, `batch_size`, `seed` as
            in `Attack`.
    """

    name = "PGD"

    def __init__(
        self,
        model,
        *,
        eps,
        steps=20,
        step_size=None,
        restarts=1,
        random_init=True,
        **kwargs,
    ):
        super().__init__(model, eps=eps, **kwargs)
        self.steps = check_positive("steps", steps, integer=True)
        self.step_size = (
            2.5 * self.eps / self.steps
            if step_size is None
            else check_positive("step_size", step_size)
        )
        self.restarts = check_positive("restarts", restarts, integer=True)
        self.random_init = check_bool("random_init", random_init)

    def get_config(self):
        config = super().get_config()
        config.update(
            steps=self.steps,
            step_size=self.step_size,
            restarts=self.restarts,
            random_init=self.random_init,
        )
        return config

    def _loss(self, x_adv, y):
        return cross_entropy(self.logits(x_adv), y)

    def _attack_batch(self, x, y, keys):
        low, high = self.clip_values
        x_best = x
        fooled = ops.zeros(ops.shape(y), "bool")
        for restart in range(self.restarts):
            x_start = x
            if self.random_init:
                start = keyed_start(x, keys, self.eps, self.norm, restart)
                x_start = ops.clip(x + start, low, high)
            x_adv = ascend(
                self._loss, x, y, x_start, eps=self.eps,
                step_size=self.step_size, steps=self.steps, norm=self.norm,
                clip_values=self.clip_values,
            )
            newly = ops.logical_and(
                ops.logical_not(fooled), misclassified(self.logits(x_adv), y)
            )
            keep = ops.logical_or(newly, ops.logical_not(fooled))
            x_best = ops.where(expand_like(keep, x), x_adv, x_best)
            fooled = ops.logical_or(fooled, newly)
        return x_best
