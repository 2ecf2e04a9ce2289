"""What differs between Keras backends, for code that attacks a model.

Attacks, checks and analyses are written in `keras.ops`. The few things
`keras.ops` does not offer live in one module per backend (`tensorflow`,
`jax`, `torch`), chosen by `keras.backend.backend()`:

- `value_and_grad(fn, x)`: the value of a scalar function, its auxiliary
  outputs and its gradient with respect to `x` (`tf.GradientTape`,
  `jax.value_and_grad`, `torch.autograd.grad`);
- `compile(fn, variables)`: `fn` compiled (`tf.function`; `jax.jit` over
  the current values of the Keras `variables` it reads, passed in through a
  `keras.StatelessScope`, so that nothing is baked in and nothing retraces
  when weights change; PyTorch runs eagerly), and split over the devices of
  the `distribute(...)` scope it is called in;
- `fuse(fn, **settings)`: `fn` compiled into one kernel inside a compiled
  function (`tf.function(jit_compile=True)` on TensorFlow; `fn` itself
  elsewhere), shared by every caller with the same `fn` and settings;
- `model_pass(model, x, variant)`: `model(x, training=False)` inside a
  compiled function, traced once for all of them on TensorFlow;
- `random_uniform` and `random_normal` for callers seeded as `keras.random`
  is (`None`, an int or a `keras.random.SeedGenerator`).

Nothing here imports TensorFlow unless TensorFlow is the backend.
"""

import contextlib
import contextvars
import functools
import importlib

import keras
import numpy as np

# The modules of the backends that can take gradients.
BACKENDS = {
    "tensorflow": "keras_drelu.backends.tensorflow",
    "jax": "keras_drelu.backends.jax",
    "torch": "keras_drelu.backends.torch",
}

_DISTRIBUTION = contextvars.ContextVar(
    "keras_drelu_distribution", default=None
)


def name():
    """The Keras backend in use, e.g. `"tensorflow"`."""
    return keras.backend.backend()


@functools.cache
def _load(backend):
    if backend not in BACKENDS:
        raise RuntimeError(
            "keras_drelu attacks need the gradients of the TensorFlow, JAX "
            f"or PyTorch backend. Received: the {backend!r} backend"
        )
    return importlib.import_module(BACKENDS[backend])


def _module():
    return _load(name())


def value_and_grad(fn, x):
    """`(value, aux, grad)`: `fn(x) = (value, aux)` and `d value / d x`.

    `value` is a scalar; `aux` any structure of tensors, returned without
    gradient. Where `value` does not depend on `x` the gradient is zero.

    Example:

    >>> import keras, numpy as np
    >>> value, aux, grad = value_and_grad(
    ...     lambda x: (keras.ops.sum(x ** 2), x + 1.0), np.array([1.0, 2.0]))
    >>> float(value), keras.ops.convert_to_numpy(grad).tolist()
    (5.0, [2.0, 4.0])
    """
    return _module().value_and_grad(fn, keras.ops.convert_to_tensor(x))


def fuse(fn, **settings):
    """`fn` compiled into one kernel, called inside a compiled function.

    For the elementwise bookkeeping around a model's pass in an attack's
    step. TensorFlow runs a graph op by op, tens of microseconds each on a
    CPU, so that on a small model dozens of them cost as much as the
    gradient; XLA (`jit_compile=True`) fuses them into a few kernels. The
    model's pass stays outside: XLA's convolutions on CPU are several times
    slower than TensorFlow's own. JAX's `jit` fuses already and PyTorch
    runs eagerly: there `fn` is returned as it is, its settings bound.

    XLA compiles a fused function on its first call, for each shape of its
    tensors: a second or more on a CPU. An evaluation builds new attacks for
    every model and call, so the compiled functions are shared instead of
    built per attack: each call with the same `fn` and `settings` returns
    the same one (the latest `FUSED_CACHE_SIZE` are kept). For the sharing
    to be sound `fn` reads nothing of its caller's: every tensor is one of
    its arguments, every setting that enters its program a keyword of
    `settings`, which are the cache's key; a closure is refused.

    Example:

    >>> import keras, numpy as np
    >>> def scaled(x, *, scale):
    ...     return keras.ops.clip(x * scale, 0.0, 1.0)
    >>> fuse(scaled, scale=2.0) is fuse(scaled, scale=2.0)
    True
    >>> run = compile(lambda x: fuse(scaled, scale=2.0)(x))
    >>> run(np.array([0.25, 0.75], "float32")).tolist()
    [0.5, 1.0]

    Args:
        fn: A function of tensors and of keyword settings, without side
            effects, defined at module level (or reading no variable of an
            enclosing function).
        **settings: Keyword arguments of `fn` fixed in its program: numbers,
            strings, bools and tuples of them.

    Returns:
        `fn` of its other arguments, compiled, with `settings` bound.
    """
    if getattr(fn, "__closure__", None):
        raise ValueError(
            "`fuse` shares compiled functions between callers, so `fn` "
            "should take every tensor as an argument and every setting as "
            f"a keyword. Received: {fn.__qualname__} reading "
            f"{', '.join(fn.__code__.co_freevars)} of its enclosing function"
        )
    bound = tuple(
        (keyword, value, _types(value))
        for keyword, value in sorted(settings.items())
    )
    return _fused(name(), fn, bound)


def model_pass(model, x, variant=None):
    """`model(x, training=False)`, inside a compiled function.

    On TensorFlow the pass is a `tf.function` of its own, made once per
    model (and `variant`) and called from every compiled function that
    reads the model: the model's layers are traced into a graph once, and
    so is its backward pass, whose functions TensorFlow caches on the
    traced pass; the graph of each caller holds a call of it, which
    TensorFlow inlines before it runs. An evaluation compiles a dozen
    functions around the same model (every attack and check), and tracing
    a large model (MobileNetV2: a second with its gradient) each time cost
    more than running the attacks on a few inputs. Outside a compiled
    function, on other backends (JAX traces each caller's program, PyTorch
    runs eagerly) and inside a `tf.distribute` strategy (each replica
    reads its own copies of the weights) the model is called directly.

    The model's outputs hold one row per input (a classifier's logits).
    Sharing is sound only if nothing else changes what the model's call
    traces into: `variant` is anything hashable that does (e.g. whether
    `keras_drelu.straight_through()` is active), and part of the key.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> double = compile(lambda x: model_pass(model, x) * 2.0)
    >>> x = np.ones((1, 2), "float32")
    >>> bool(np.allclose(double(x), 2 * model.predict(x, verbose=0)))
    True

    Args:
        model: A Keras model or any callable taking `training=`.
        x: The inputs, a tensor of the compiled function.
        variant: A hashable value naming what else decides the trace.

    Returns:
        The model's outputs.
    """
    return _module().model_pass(model, x, variant)


# Fused functions kept, each a few small kernels per input shape; enough for
# the attacks of an evaluation over a sweep of radii.
FUSED_CACHE_SIZE = 64


@functools.lru_cache(maxsize=FUSED_CACHE_SIZE)
def _fused(backend, fn, bound):
    settings = {keyword: value for keyword, value, _ in bound}
    return _load(backend).fuse(functools.partial(fn, **settings))


def _types(value):
    """The types in `value`: `1`, `1.0` and `True` compile differently."""
    if isinstance(value, tuple):
        return tuple(_types(v) for v in value)
    if keras.ops.is_tensor(value):
        raise TypeError(
            "Settings of `fuse` are fixed in the compiled program; pass a "
            f"tensor as an argument of `fn`. Received: a setting {value!r}"
        )
    return type(value)


def random_uniform(shape, minval=0.0, maxval=1.0, dtype="float32", seed=None):
    """Uniform numbers, seeded as `keras.random` is.

    `seed` is `None`, an int or a `keras.random.SeedGenerator`. On
    TensorFlow an int or `None` is an op-level seed of `tf.random.uniform`,
    so that a compiled function draws new numbers on every call; under
    `jax.jit` only a `SeedGenerator` (a variable of the traced state) does.
    """
    return _module().random_uniform(shape, minval, maxval, dtype, seed)


def random_normal(shape, dtype="float32", seed=None):
    """Standard normal numbers, seeded as `random_uniform`."""
    return _module().random_normal(shape, dtype, seed)


def hash_dtype():
    """The integer dtype `keras_drelu.attacks.randomness` hashes in."""
    return _module().HASH_DTYPE


def variables_of(*models):
    """The Keras variables `models` read, each once."""
    seen, found = set(), []
    for model in models:
        for variable in getattr(model, "variables", None) or ():
            if id(variable) not in seen:
                seen.add(id(variable))
                found.append(variable)
    return found


def compile(fn, variables=()):
    """`fn` compiled for the backend: numpy arrays in, numpy arrays out.

    Every argument and output of `fn` holds one row per example (the batch
    is the first axis): a call inside `distribute(...)` splits them over
    the devices and joins the outputs. On JAX the batch is padded to the
    next power of two (with copies of its last row, whose outputs are
    dropped), so that calls on batches of many sizes share a few traces.
    Between calls nothing runs on the device: callers chain compiled
    functions with numpy, and JAX compiles no eager operations.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> predict = compile(lambda x: model(x), model.variables)
    >>> model.set_weights([np.ones((2, 1), "float32"), np.zeros(1, "float32")])
    >>> predict(np.ones((3, 2), "float32"))[:, 0].tolist()
    [2.0, 2.0, 2.0]

    Args:
        fn: A function of tensors with the batch as their first axis,
            returning such tensors (any structure of them).
        variables: Keras variables `fn` reads (`variables_of(model)`). On
            JAX, variables left out are read once, when `fn` is traced.
            Defaults to `()`.

    Returns:
        A callable taking and returning numpy arrays.
    """
    return Compiled(fn, variables)


class Compiled:
    """A compiled function; see `compile`."""

    def __init__(self, fn, variables):
        self._fn = fn
        self._variables = list(variables)
        self._runs = {}

    def _run(self, distribution):
        # Keyed by the distribution itself, which the key keeps alive.
        if distribution not in self._runs:
            self._runs[distribution] = (
                _module().compile(self._fn, self._variables)
                if distribution is None
                else distribution.compile(self._fn, self._variables)
            )
        return self._runs[distribution]

    def __call__(self, *args):
        distribution = _DISTRIBUTION.get() if len(args[0]) else None
        args = [np.asarray(keras.ops.convert_to_numpy(a)) for a in args]
        n = len(args[0])
        size = _module().padded_size(n) if n else n
        if distribution is not None:
            size = -(-size // distribution.replicas) * distribution.replicas
        if size != n:
            args = [
                np.concatenate([a, np.repeat(a[-1:], size - n, axis=0)])
                for a in args
            ]
        outputs = self._run(distribution)(
            *[keras.ops.convert_to_tensor(a) for a in args]
        )
        # Copies: JAX's arrays are read-only views.
        return keras.tree.map_structure(
            lambda t: np.array(keras.ops.convert_to_numpy(t)[:n]), outputs
        )


class Distribution:
    """Splits the batch of compiled functions over devices.

    Each backend that can subclasses it: `replicas` devices, and
    `compile(fn, variables)` returning `fn` run on a batch (a multiple of
    `replicas` long) split over them, its outputs joined.
    """

    replicas = 1

    def compile(self, fn, variables):
        raise NotImplementedError


def distribution(spec):
    """The backend's distribution for `spec`, or `None` for one device.

    Args:
        spec: `None` or `False` (one device), `True` (every local
            accelerator, or the CPU), a `tf.distribute.Strategy`
            (TensorFlow) or a `keras.distribution.DataParallel` (JAX).

    Returns:
        An object with `replicas` and `compile(fn, variables)`, or `None`.
    """
    if spec is None or spec is False:
        return None
    found = _module().distribution(spec)
    # One replica: the plain single-device path.
    return None if found is not None and found.replicas == 1 else found


@contextlib.contextmanager
def distribute(spec):
    """Compiled functions called in this scope split their batch over devices.

    Each batch is padded to a multiple of the number of replicas and cut
    into equal parts, one per replica; the outputs are joined in order.
    Attacks draw their random numbers per example
    (`keras_drelu.attacks.randomness`), so a split batch gives what the
    whole one does.

    Args:
        spec: As for `distribution`, or what it returned.

    Yields:
        The distribution in use, or `None` for one device.
    """
    found = spec if isinstance(spec, Distribution) else distribution(spec)
    token = _DISTRIBUTION.set(found)
    try:
        yield found
    finally:
        _DISTRIBUTION.reset(token)
