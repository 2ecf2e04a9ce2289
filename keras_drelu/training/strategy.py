"""Picking a `tf.distribute` strategy by name, on the TensorFlow backend.

TensorFlow is imported only when a strategy is asked for: on JAX the
training recipes run, and this module imports, without it.
"""

import os

import keras

from keras_drelu.arguments import check_choice


def _tensorflow(strategy):
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(
            "Argument `strategy` names a `tf.distribute` strategy, which "
            f"distributes training on the TensorFlow backend, not on the "
            f"{backend!r} backend (on JAX, Keras' trainer follows "
            "`keras.distribution.set_distribution(...)` instead). Received: "
            f"strategy={strategy!r}"
        )
    import tensorflow as tf

    return tf


def _auto(tf):
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _multi_worker(tf):
    if "TF_CONFIG" not in os.environ:
        raise ValueError(
            "strategy='multi_worker' needs the TF_CONFIG environment "
            "variable describing the cluster and this worker's task"
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def _tpu(tf):
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


# Each name with the function making its strategy from the `tensorflow`
# module.
STRATEGIES = {
    "auto": _auto,
    "mirrored": lambda tf: tf.distribute.MirroredStrategy(),
    "multi_worker": _multi_worker,
    "tpu": _tpu,
    "none": lambda tf: tf.distribute.get_strategy(),
}


def get_strategy(strategy="auto"):
    """A `tf.distribute.Strategy` from a name (or the strategy itself).

    - `"auto"`: `MirroredStrategy` over all GPUs when there are several,
      else the default (no-op) strategy. TPUs are used only when asked for.
    - `"mirrored"`: `MirroredStrategy` over every local GPU (the CPU when
      there is none).
    - `"multi_worker"`: `MultiWorkerMirroredStrategy`, configured by the
      `TF_CONFIG` environment variable of each worker.
    - `"tpu"`: `TPUStrategy` on the TPU found by `TPUClusterResolver`
      (such as a Cloud TPU VM), after initialising the TPU system.
    - `"none"`: the default strategy, which distributes nothing.

    The model (and its optimizer) must be created inside
    `strategy.scope()`; `keras_drelu.training.train` does that when given a
    function that builds the model. Strategies distribute training on the
    TensorFlow backend only; on another backend this raises.

    Example:

    >>> get_strategy("none").num_replicas_in_sync
    1

    Args:
        strategy: A name of `STRATEGIES`, or a `tf.distribute.Strategy`,
            returned as is. Defaults to `"auto"`.

    Returns:
        A `tf.distribute.Strategy`.
    """
    if isinstance(strategy, str):
        check_choice("strategy", strategy, STRATEGIES)
    tf = _tensorflow(strategy)
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    return STRATEGIES[check_choice("strategy", strategy, STRATEGIES)](tf)
