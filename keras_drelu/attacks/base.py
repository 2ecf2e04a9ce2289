"""The `Attack` base class: a uniform constructor and batched `generate`."""

import contextlib
import math
import secrets
import types
import warnings

import numpy as np
from keras import ops

from keras_drelu import backends
from keras_drelu.arguments import ArgumentTypeError
from keras_drelu.arguments import check_choice
from keras_drelu.arguments import check_clip_values
from keras_drelu.arguments import check_inputs_and_labels
from keras_drelu.arguments import check_labels
from keras_drelu.arguments import check_positive
from keras_drelu.arguments import check_seed
from keras_drelu.arguments import check_within
from keras_drelu.attacks import randomness
from keras_drelu.layers.straight_through import straight_through_active
from keras_drelu.outputs import final_softmax
from keras_drelu.outputs import logits_model
from keras_drelu.outputs import outputs_probabilities

NORMS = ("linf", "l2")
OUTPUTS = ("auto", "logits", "probabilities")


class Attack:
    """Base class of every attack: numpy in, numpy out, graph-compiled.

    A subclass implements `_attack_batch(x, y, keys)` in `keras.ops`; the
    base class checks the inputs (finite, within `clip_values`) and labels
    (classes of the model), batches the inputs and compiles that method
    for the backend (`keras_drelu.backends.compile`: `tf.function` on
    TensorFlow, `jax.jit` over the model's current weights on JAX, eager on
    PyTorch). Inputs may have any shape. An attack made of runs chained on
    the host (APGD, FAB-T) sets `compile_batch = False` and compiles each
    run with `self._compiled(name)`.

    The randomness of an input is drawn from the seed and the input's place
    in the `generate` call (`keras_drelu.attacks.randomness`): the same on
    every backend and however the batch is split over devices. A seeded
    attack gives the same examples on every call; with `seed=None` each
    call draws a new seed.

    `self.logits(x)` gives the model's logits. For a model ending in a
    softmax (`keras_drelu.outputs.final_softmax`) they are the outputs of
    `keras_drelu.outputs.logits_model`, read below the softmax: build the
    attack after training such a model. Where no softmax can be removed but
    the outputs are probabilities (a softmax inside a custom layer), the
    attack warns, as AutoAttack's `check_range_output` does, and attacks
    `log(max(p, 1e-30))`, which has the same softmax but no gradient where
    a class is certain; `attacks_logits` is then `False`.

    Example:

    >>> import keras, numpy as np
    >>> from keras_drelu.attacks import FGSM
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.full((2, 4), 0.5, "float32")
    >>> x_adv = FGSM(model, eps=0.1).generate(x, np.array([0, 1]))
    >>> float(np.abs(x_adv - x).max()) <= 0.1 + 1e-6
    True

    Args:
        model: A Keras classifier, called as `model(x, training=False)`.
        eps: Radius of the threat model (the `norm` ball around each input).
        norm: `"linf"` or `"l2"`. Defaults to `"linf"`.
        clip_values: `(low, high)` range of valid inputs. Defaults to
            `(0.0, 1.0)`.
        outputs: `"logits"`, `"probabilities"` or `"auto"`, which decides
            with `keras_drelu.outputs.outputs_probabilities` (a final
            softmax, else rows of the first batch that are non-negative and
            sum to one). Defaults to `"auto"`.
        batch_size: Number of inputs attacked at once. Defaults to `256`.
        seed: Optional int seed of the attack's randomness. Defaults to
            `None`.
    """

    name = "Attack"
    gradient_free = False
    min_classes = 2
    # Settings a `Transfer` gives this attack on the surrogate it runs on.
    transfer_settings = types.MappingProxyType({})
    # Whether `_attack_batch` is compiled whole.
    compile_batch = True

    @property
    def kind(self):
        """What the attack knows of the model, for the evaluation's cascade.

        `"white-box"` (iterative gradient attacks), `"single-step"`,
        `"black-box"` (outputs only), `"transfer"` (gradients of a surrogate)
        or `"adaptive"` (gradients adapted to the caps). Subclasses set it
        as a class attribute; by default it follows `gradient_free`.
        """
        return "black-box" if self.gradient_free else "white-box"

    def __init__(
        self,
        model,
        *,
        eps,
        norm="linf",
        clip_values=(0.0, 1.0),
        outputs="auto",
        batch_size=256,
        seed=None,
    ):
        if not callable(model):
            raise ArgumentTypeError(
                "Argument `model` should be a callable Keras model. Received: "
                f"model={model!r}"
            )
        self.model = model
        # An unbounded ball is a threat model too: CW-L2 with eps=inf keeps
        # its smallest perturbation whole.
        self.eps = eps if eps == math.inf else check_positive("eps", eps)
        self.norm = check_choice("norm", norm, NORMS)
        self.clip_values = check_clip_values(clip_values)
        self.outputs = check_choice("outputs", outputs, OUTPUTS)
        self.batch_size = check_positive("batch_size", batch_size, integer=True)
        self.seed = check_seed("seed", seed)
        self._logits_fn = None
        self._n_classes = None
        self._find_logits(sample=None)
        self._functions = {}
        # The scope compiled functions are traced in (BPDA's straight-through).
        self._trace_scope = contextlib.nullcontext

    def get_config(self):
        """The constructor arguments other than `model`."""
        return {
            "eps": self.eps,
            "norm": self.norm,
            "clip_values": self.clip_values,
            "outputs": self.outputs,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }

    def clone(self, model, **changes):
        """The same attack on another `model`, with `changes` to settings."""
        return type(self)(model, **(self.get_config() | changes))

    @property
    def threat_model(self):
        """`(norm, eps)`: the ball the adversarial examples lie in."""
        return (self.norm, self.eps)

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({settings})"

    @property
    def attacks_logits(self):
        """Whether the attack's losses see the model's logits.

        `True` for a logits model and for one whose final softmax was
        removed; `False` when the attack falls back to the logarithm of the
        probabilities (it warns then); `None` while `outputs="auto"` is not
        yet decided (until the first `generate` call).
        """
        if self._logits_fn is None:
            return None
        return self._logits_fn is not _log_probabilities

    def logits(self, x):
        """The model's logits (see `attacks_logits`).

        Inside compiled functions the pass is shared by every attack on the
        same model (`keras_drelu.backends.model_pass`), one trace for each
        state of `keras_drelu.straight_through()`.
        """
        read = self.model if self._logits_fn is None else self._logits_fn
        variant = straight_through_active()
        if read is _log_probabilities:
            return _log_probabilities(
                backends.model_pass(self.model, x, variant)
            )
        return backends.model_pass(read, x, variant)

    def _find_logits(self, sample):
        """Chooses what `logits` reads; `sample` decides `outputs="auto"`."""
        if self._logits_fn is not None:
            return
        if self.outputs == "logits":
            self._logits_fn = self.model
            return
        if final_softmax(self.model) is not None:
            self.outputs = "probabilities"
            below = _below_softmax(self.model)
            self._logits_fn = self._fallback() if below is None else below
            return
        if self.outputs == "auto":
            if sample is None:
                return
            if not outputs_probabilities(self.model, sample):
                self.outputs = "logits"
                self._logits_fn = self.model
                return
            self.outputs = "probabilities"
        self._logits_fn = self._fallback()

    def _fallback(self):
        """Log-probabilities, with AutoAttack's warning about them."""
        name = getattr(self.model, "name", type(self.model).__name__)
        warnings.warn(
            f"{type(self).__name__}: model {name!r} outputs probabilities and "
            "no softmax could be removed to reach its logits, so the attack "
            "maximises losses of log(max(p, 1e-30)), which have no gradient "
            "where the model is certain: the robustness it reports may be "
            "overstated. Pass a model that outputs logits.",
            stacklevel=4,
        )
        return _log_probabilities

    def _inspect(self, x):
        """Decides `outputs="auto"` and counts the model's classes."""
        if self._n_classes is None or self._logits_fn is None:
            sample = self.model(x[: self.batch_size], training=False)
            self._find_logits(sample)
            self._n_classes = int(sample.shape[-1])
        return self._n_classes

    def generate(self, x, y):
        """Adversarial examples for inputs `x` with integer labels `y`.

        Args:
            x: Numpy array of finite inputs within `clip_values`, of any
                shape `(batch, ...)`.
            y: Numpy array of integer labels, one class of the model per
                input.

        Returns:
            A float32 numpy array shaped like `x`, every row within `eps` of
            the clean row in `norm` and within `clip_values`.
        """
        x = np.asarray(x, dtype="float32")
        if not len(x):
            return x.copy()
        x, y = check_inputs_and_labels(x, y)
        check_within(x, self.clip_values)
        check_labels(y, self._inspect(x))
        y = y.astype("int32")
        seed = secrets.randbits(32) if self.seed is None else self.seed
        keys = randomness.keys(seed, len(x))
        attack = (
            self._compiled("_attack_batch")
            if self.compile_batch
            else self._attack_batch
        )
        return self._collect(
            [
                attack(
                    x[i : i + self.batch_size],
                    y[i : i + self.batch_size],
                    keys[i : i + self.batch_size],
                )
                for i in range(0, len(x), self.batch_size)
            ]
        )

    def _collect(self, batches):
        """The result of `generate` from the (numpy) results of the batches."""
        return np.concatenate(batches)

    def _compiled(self, name):
        """The method `name`, compiled once per attack (numpy in and out).

        It reads the current weights of the model (and of the model its
        logits come from), and is traced inside `self._trace_scope()`.
        """
        if name not in self._functions:
            method = getattr(self, name)

            def traced(*args):
                with self._trace_scope():
                    return method(*args)

            self._functions[name] = backends.compile(
                traced, backends.variables_of(self.model, self._logits_fn)
            )
        return self._functions[name]

    def _attack_batch(self, x, y, keys):
        raise NotImplementedError(
            f"{type(self).__name__} should implement `_attack_batch`."
        )


def _log_probabilities(p):
    return ops.log(ops.maximum(p, 1e-30))


def _below_softmax(model):
    """`logits_model(model)` if it removes the softmax, else `None`."""
    try:
        below = logits_model(model)
    except ValueError:
        return None
    return None if final_softmax(below) is not None else below
