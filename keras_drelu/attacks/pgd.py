"""Projected gradient descent (Madry et al., 2018), L-inf and L2.

`projected_gradient_descent` is the graph-friendly core: a pure TensorFlow
function of a per-example loss, used both by the `PGD` attack and inside the
`train_step` of adversarial training. Written by hand because no library
offers a Keras 3 attack that compiles into a `tf.function`.
"""

import tensorflow as tf

NORMS = ("linf", "l2")


def _check_norm(norm):
    if norm not in NORMS:
        raise ValueError(
            f"Argument `norm` should be one of {NORMS}. Received: norm={norm!r}"
        )
    return norm


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
