"""Projected gradient descent (Madry et al., 2018), L-inf and L2.

`projected_gradient_descent` is the graph-friendly core: a pure TensorFlow
function of a per-example loss, used both by the `PGD` attack and inside the
`train_step` of adversarial training. Written by hand because no library
offers a Keras 3 attack that compiles into a `tf.function`.
"""

import tensorflow as tf

from keras_drelu.arguments import check_bool
from keras_drelu.arguments import check_choice
from keras_drelu.arguments import check_positive
from keras_drelu.attacks.base import NORMS
from keras_drelu.attacks.base import Attack
from keras_drelu.attacks.losses import cross_entropy


def _check_norm(norm):
    return check_choice("norm", norm, NORMS)


def _per_example_l2(t):
    axes = tf.range(1, tf.rank(t))
    return tf.sqrt(tf.reduce_sum(tf.square(t), axis=axes, keepdims=True))


def project(delta, eps, norm):
    """Projects `delta` onto the `norm` ball of radius `eps`, per example."""
    if norm == "linf":
        return tf.clip_by_value(delta, -eps, eps)
    norms = _per_example_l2(delta)
    return delta * tf.minimum(1.0, eps / tf.maximum(norms, 1e-12))


def random_start(x, eps, norm, seed=None):
    """A uniformly drawn point of the `norm` ball of radius `eps` around 0."""
    if norm == "linf":
        return tf.random.uniform(
            tf.shape(x), -eps, eps, dtype=x.dtype, seed=seed
        )
    direction = tf.random.normal(tf.shape(x), dtype=x.dtype, seed=seed)
    direction /= tf.maximum(_per_example_l2(direction), 1e-12)
    dims = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), x.dtype)
    radius = eps * tf.random.uniform(
        tf.concat([tf.shape(x)[:1], tf.ones_like(tf.shape(x)[1:])], 0),
        dtype=x.dtype,
        seed=seed,
    ) ** (1.0 / dims)
    return direction * radius


def ascent_direction(grad, norm):
    """The steepest-ascent step of unit `norm` for gradient `grad`."""
    if norm == "linf":
        return tf.sign(grad)
    return grad / tf.maximum(_per_example_l2(grad), 1e-12)


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
        seed: Optional int seed of the random start.

    Returns:
        The adversarial batch, with no gradient attached.
    """
    _check_norm(norm)
    x = tf.convert_to_tensor(x)
    low, high = clip_values
    eps = tf.cast(eps, x.dtype)
    step_size = tf.cast(step_size, x.dtype)
    if random_init:
        x_adv = tf.clip_by_value(
            x + random_start(x, eps, norm, seed), low, high
        )
    else:
        x_adv = x

    def step(i, x_adv):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            loss = tf.reduce_sum(loss_fn(x_adv, y))
        grad = tape.gradient(
            loss, x_adv, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        x_adv = x_adv + step_size * ascent_direction(grad, norm)
        x_adv = tf.clip_by_value(x + project(x_adv - x, eps, norm), low, high)
        return i + 1, x_adv

    _, x_adv = tf.while_loop(
        lambda i, _: i < steps, step, (tf.constant(0), x_adv)
    )
    return tf.stop_gradient(x_adv)


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

    def _attack_batch(self, x, y):
        x_best = x
        fooled = tf.zeros(tf.shape(y), tf.bool)
        for restart in range(self.restarts):
            # Same-seeded random ops draw the same numbers: offset each restart.
            seed = None if self.seed is None else self.seed + restart
            x_adv = projected_gradient_descent(
                self._loss,
                x,
                y,
                eps=self.eps,
                step_size=self.step_size,
                steps=self.steps,
                norm=self.norm,
                random_init=self.random_init,
                clip_values=self.clip_values,
                seed=seed,
            )
            newly = tf.logical_and(
                tf.logical_not(fooled), _misclassified(self.logits(x_adv), y)
            )
            keep = tf.logical_or(newly, tf.logical_not(fooled))
            x_best = tf.where(_expand_like(keep, x), x_adv, x_best)
            fooled = tf.logical_or(fooled, newly)
        return x_best


def _misclassified(logits, y):
    return tf.not_equal(tf.argmax(logits, axis=1, output_type=tf.int32), y)


def _expand_like(mask, x):
    """`mask` of shape `(batch,)` reshaped to broadcast against `x`."""
    ones = tf.ones_like(tf.shape(x)[1:])
    return tf.reshape(mask, tf.concat([tf.shape(mask), ones], 0))
