"""The training step of each Keras backend, for the recipes' trainers.

A recipe says in `keras.ops` what one training step trains on
(`RobustTraining.training_batch`: the attacked batch, crafted with the
weights of that step); the update is Keras' own `train_step` on that batch.
What differs between backends is how the two meet, and it is all here, in
one base class per backend that `RobustTraining` derives from:

- TensorFlow (`TensorFlowStep`): `train_step(data)` runs in a
  `tf.function` that reads the variables themselves; the batch is crafted,
  then handed to Keras' step, which scales losses for `tf.distribute`.
- JAX (`JAXStep`): `train_step(state, data)` is a pure function of the
  state Keras' JAX trainer passes in. The batch is crafted inside a
  `keras.StatelessScope` mapping every variable to its value in that state
  (weights, the optimizer's step counter for the eps schedule, the random
  states), so that the attack sees this step's weights, not those of the
  step traced first; the random states it moved on go into the state that
  Keras' stateless step then updates.

Nothing here imports TensorFlow or JAX.
"""

import keras


class TensorFlowStep:
    """The training step on TensorFlow: the batch, then Keras' step."""

    # Op-level seeds: each replica of a `tf.distribute` strategy draws its
    # own random start, where replicas sharing a SeedGenerator would draw
    # the same numbers.
    attack_seed = None

    def train_step(self, data):
        return super().train_step(self.training_batch(
            *keras.utils.unpack_x_y_sample_weight(data)
        ))


class JAXStep:
    """The training step on JAX: the batch crafted with the step's state,
    then Keras' stateless step."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Under `jax.jit` only a SeedGenerator, whose state is part of the
        # traced state, draws new numbers on every step.
        self.attack_seed = keras.random.SeedGenerator()

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_variables, metrics = state
        mapping = [
            *zip(self.trainable_variables, trainable),
            *zip(self.non_trainable_variables, non_trainable),
            *zip(self.optimizer.variables, optimizer_variables),
        ]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            batch = self.training_batch(
                *keras.utils.unpack_x_y_sample_weight(data)
            )
        non_trainable = [
            scope.get_current_value(variable) for variable in
            self.non_trainable_variables
        ]
        return super().train_step(
            (trainable, non_trainable, optimizer_variables, metrics), batch
        )


def _unsupported(backend):
    class UnsupportedStep:
        def train_step(self, *args):
            raise RuntimeError(
                "keras_drelu's training recipes run on the TensorFlow and JAX "
                f"backends. Received: the {backend!r} backend"
            )

    return UnsupportedStep


# The base class of the trainers for each backend.
STEPS = {"tensorflow": TensorFlowStep, "jax": JAXStep}


def backend_step(backend=None):
    """The base class giving the trainers their `train_step` on `backend`.

    Example:

    >>> backend_step("jax").__name__
    'JAXStep'

    Args:
        backend: A Keras backend name. Defaults to `None`, the backend in
            use.

    Returns:
        A class of `STEPS`, or one whose `train_step` raises, naming the
        backend, for a backend the recipes do not train on.
    """
    backend = keras.backend.backend() if backend is None else backend
    return STEPS.get(backend) or _unsupported(backend)
