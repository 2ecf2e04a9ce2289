"""The TensorFlow side of `keras_drelu.backends`."""

import functools
import weakref

import keras
import tensorflow as tf

from keras_drelu import backends

HASH_DTYPE = "uint32"


def value_and_grad(fn, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        value, aux = fn(x)
    grad = tape.gradient(
        value, x, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    # A gradient through a shared pass traced for any batch size (see
    # `model_pass`) comes back without one; it has `x`'s shape.
    grad.set_shape(x.shape)
    return value, aux, grad


def compile(fn, variables):
    # TensorFlow reads variables when the graph runs. It counts traces per
    # code object and warns about "excessive retracing" when several
    # attacks trace the same method once each, as an evaluation suite does
    # by design; a `functools.partial` has no code object, so each compiled
    # function is counted on its own. The code loops with `keras.ops`:
    # AutoGraph has nothing to convert.
    del variables
    return tf.function(
        functools.partial(fn), reduce_retracing=True, autograph=False
    )


# model -> {variant: its pass as a tf.function}; a model's passes go with it.
_PASSES = weakref.WeakKeyDictionary()


def model_pass(model, x, variant):
    if tf.executing_eagerly() or tf.distribute.has_strategy():
        return model(x, training=False)
    try:
        passes = _PASSES.setdefault(model, {})
    except TypeError:  # Not weakly referenceable: never shared.
        return model(x, training=False)
    if variant not in passes:
        # A weak reference: the pass must not keep its model alive.
        model_ref = weakref.ref(model)
        passes[variant] = tf.function(
            lambda x: model_ref()(x, training=False),
            reduce_retracing=True,
            autograph=False,
        )
    outputs = passes[variant](x)
    # After inputs of two sizes the pass is traced for any batch size: give
    # its outputs (a row per input) the batch size of this caller's `x`,
    # which loops over them need to keep their shapes.
    for output in tf.nest.flatten(outputs):
        if output.shape.rank:
            output.set_shape(x.shape[:1].concatenate(output.shape[1:]))
    return outputs


def fuse(fn):
    return tf.function(fn, jit_compile=True, autograph=False)


def padded_size(n):
    # Traces relax to a batch of unknown size: no padding needed.
    return n


def random_uniform(shape, minval, maxval, dtype, seed):
    if isinstance(seed, keras.random.SeedGenerator):
        return keras.random.uniform(shape, minval, maxval, dtype, seed=seed)
    return tf.random.uniform(shape, minval, maxval, dtype=dtype, seed=seed)


def random_normal(shape, dtype, seed):
    if isinstance(seed, keras.random.SeedGenerator):
        return keras.random.normal(shape, dtype=dtype, seed=seed)
    return tf.random.normal(shape, dtype=dtype, seed=seed)


class Distribution(backends.Distribution):
    """Runs a function on each replica of a `tf.distribute.Strategy`."""

    def __init__(self, strategy):
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync

    def compile(self, fn, variables):
        del variables
        strategy = self.strategy
        devices = strategy.extended.worker_devices

        def on_replicas(*args):
            return strategy.run(fn, args=args)

        run = tf.function(
            functools.partial(on_replicas), reduce_retracing=True,
            autograph=False,
        )

        def split(t):
            parts = tf.split(t, self.replicas)

            def place(context):
                with tf.device(devices[context.replica_id_in_sync_group]):
                    return tf.identity(parts[context.replica_id_in_sync_group])

            return strategy.experimental_distribute_values_from_function(place)

        def call(*args):
            outputs = run(*[split(t) for t in args])
            return tf.nest.map_structure(
                lambda t: tf.concat(strategy.experimental_local_results(t), 0),
                outputs,
            )

        return call


def distribution(spec):
    if spec is True:
        spec = tf.distribute.MirroredStrategy()
    if not isinstance(spec, tf.distribute.Strategy):
        raise ValueError(
            "Argument `distribute` should be None, True or a "
            "`tf.distribute.Strategy` on the TensorFlow backend. Received: "
            f"distribute={spec!r}"
        )
    return Distribution(spec)
