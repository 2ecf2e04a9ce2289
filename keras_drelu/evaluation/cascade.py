"""The cascade: attacks run one after another, with per-input bookkeeping.

`Cascade.run_attack` is one step: it attacks the inputs still robust (in a
cascade) or every correctly classified input, checks that the attack kept to
its threat model and records, per input, whether it was broken and the first
adversarial example found. `run_cascade` runs a list of attacks and returns
a `CascadeResult`, plain data that the checks and the report read. That
result, with a `PartialAttack` for an attack part-way through its inputs,
is all there is to save (`keras_drelu.evaluation.state`): a cascade
continues from them.
"""

import dataclasses
import time

import numpy as np
from keras import ops

from keras_drelu import backends
from keras_drelu.evaluation.report import AttackResult
from keras_drelu.layers.straight_through import straight_through_active


def predictor(model, batch_size):
    """`predict(x)`: the model's predicted classes for numpy inputs `x`.

    Compiled for the backend (`keras_drelu.backends.compile`), and split
    over the devices of a `keras_drelu.backends.distribute` scope.

    Example:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.eye(2, dtype="float32"), np.zeros(2, "float32")])
    >>> predictor(model, 2)(np.array([[1, 0], [0, 1], [0, 3]], "float32"))
    array([0, 1, 1], dtype=int32)

    Args:
        model: A Keras classifier.
        batch_size: Inputs per forward pass.

    Returns:
        A function from a float32 array to an int32 array of classes.
    """

    def labels(xb):
        logits = backends.model_pass(model, xb, straight_through_active())
        return ops.cast(ops.argmax(logits, axis=1), "int32")

    labels = backends.compile(labels, backends.variables_of(model))

    def predict(x):
        if not len(x):
            return np.zeros([0], "int32")
        return np.concatenate(
            [
                labels(x[i : i + batch_size])
                for i in range(0, len(x), batch_size)
            ]
        )

    return predict


def check_threat_model(name, x, x_adv, threat_model, clip_values):
    """Raises if `x_adv` left the `(norm, eps)` ball around `x` or the range.

    An attack that leaves its threat model has a bug; its successes would
    not count, so the evaluation stops rather than report them.

    Example:

    >>> x = np.zeros((1, 2), "float32")
    >>> check_threat_model("PGD", x, x + 0.1, ("linf", 0.1), (0.0, 1.0))
    >>> check_threat_model("PGD", x, x + 0.2, ("linf", 0.1), (0.0, 1.0))
    Traceback (most recent call last):
    ...
    RuntimeError: Attack PGD left its threat model (linf, eps=0.1) or the input range (0.0, 1.0): perturbation 0.2, range [0.2, 0.2]. This is a bug in the attack.
    """
    if not len(x):
        return
    norm, eps = threat_model
    delta = (x_adv - x).reshape(len(x), -1)
    size = (
        np.abs(delta).max(axis=1)
        if norm == "linf"
        else np.linalg.norm(delta, axis=1)
    )
    low, high = clip_values
    if (
        size.max() > eps * (1 + 1e-4) + 1e-5
        or x_adv.min() < low - 1e-5
        or x_adv.max() > high + 1e-5
    ):
        raise RuntimeError(
            f"Attack {name} left its threat model ({norm}, eps={eps}) or the "
            f"input range {clip_values}: perturbation {size.max():g}, range "
            f"[{x_adv.min():g}, {x_adv.max():g}]. This is a bug in the attack."
        )


@dataclasses.dataclass
class CascadeResult:
    """What a run of attacks found, per attack and per input.

    Args:
        threat_model: `(norm, eps)` of the evaluation; attacks of another
            threat model are reported but not part of the worst case.
        cascade: Whether attacks ran only on inputs still robust.
        clean_pred: The model's predictions on the clean inputs.
        clean_correct: Per input, whether the clean prediction is right.
        results: `AttackResult` per attack, in the order they ran.
        broken: Per attack (aligned with `results`), a boolean array over
            all inputs: which the attack misclassified.
        x_adv: Per input, the first adversarial example of the evaluated
            threat model (the clean input where none was found).
        adv_pred: The model's prediction on `x_adv`.
        timings: `"clean"` and attack name -> seconds.
        notes: Informational lines (attacks of another threat model).
    """

    threat_model: tuple
    cascade: bool
    clean_pred: np.ndarray
    clean_correct: np.ndarray
    results: list
    broken: list
    x_adv: np.ndarray
    adv_pred: np.ndarray
    timings: dict
    notes: list

    def entries_under(self, threat_model):
        """`(result, broken)` for each attack of `threat_model`."""
        return [
            (result, broken)
            for result, broken in zip(self.results, self.broken)
            if (result.norm, result.eps) == tuple(threat_model)
        ]

    def robust_under(self, threat_model):
        """Per input: correct and broken by no attack of `threat_model`."""
        robust = self.clean_correct.copy()
        for _, broken in self.entries_under(threat_model):
            robust &= ~broken
        return robust

    @property
    def entries(self):
        """`(result, broken)` for each attack of the evaluated threat model."""
        return self.entries_under(self.threat_model)

    @property
    def robust(self):
        """Per input: correct and broken by no attack of the threat model."""
        return self.robust_under(self.threat_model)


@dataclasses.dataclass
class PartialAttack:
    """An attack part-way through its inputs.

    Args:
        name: The attack's name.
        index: The inputs it runs on (indices into the cascade's inputs).
        adversarial: Its examples for the first `len(adversarial)` of them.
        predictions: The model's predictions on `adversarial`.
        seconds: Time spent so far.
        queries: For an attack that counts its queries (`Square.queries`),
            the queries spent on each finished input. Defaults to `None`.
    """

    name: str
    index: np.ndarray
    adversarial: np.ndarray
    predictions: np.ndarray
    seconds: float
    queries: np.ndarray = None

    @property
    def done(self):
        """How many of its inputs the attack has finished."""
        return len(self.adversarial)

    def extended(self, adversarial, predictions, seconds, queries):
        """This attack with one more chunk finished."""
        if queries is not None and self.done:
            # Counted for every chunk or for none.
            queries = (
                None if self.queries is None
                else np.concatenate([self.queries, queries])
            )
        return PartialAttack(
            self.name,
            self.index,
            np.concatenate([self.adversarial, adversarial]),
            np.concatenate([self.predictions, predictions]),
            self.seconds + seconds,
            queries,
        )


class Cascade:
    """Runs attacks one at a time on the inputs `x`, keeping the books.

    All its state is the `CascadeResult` (`result()`): which inputs each
    attack broke is enough to know which inputs the next one runs on, so a
    cascade can continue from a saved result.

    Example:

    >>> import keras
    >>> from keras_drelu.attacks import FGSM
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> x, y = np.full((4, 2), 0.5, "float32"), np.array([0, 1, 0, 1])
    >>> cascade = Cascade(x, y, predictor(model, 4),
    ...                   threat_model=("linf", 0.1), clip_values=(0.0, 1.0))
    >>> cascade.run_attack(FGSM(model, eps=0.1)).name
    'FGSM'
    >>> cascade.result().robust.shape
    (4,)

    Args:
        x: Checked inputs (see `evaluation_inputs`).
        y: Their integer labels.
        predict: `predict(x)` returning classes (see `predictor`).
        threat_model: `(norm, eps)` of the evaluation.
        clip_values: `(low, high)` input range.
        cascade: Whether each attack runs only on the inputs the earlier
            attacks of its threat model left robust (else on every
            correctly classified input). Defaults to `True`.
        chunk_size: Inputs given to an attack at once; after each chunk
            `run_attack` reports its progress. Defaults to `None`, all of
            them at once.
        result: A `CascadeResult` of earlier attacks on the same inputs
            (a saved state) to continue from, instead of the clean
            predictions. Defaults to `None`.
    """

    def __init__(
        self, x, y, predict, *, threat_model, clip_values, cascade=True,
        chunk_size=None, result=None,
    ):
        self.x, self.y, self.predict = x, y, predict
        self.threat_model = tuple(threat_model)
        self.clip_values = tuple(clip_values)
        self.cascade = cascade
        self.chunk_size = chunk_size or max(len(x), 1)
        if result is not None:
            self._result = result
            return
        start = time.perf_counter()
        clean_pred = predict(x)
        self._result = CascadeResult(
            threat_model=self.threat_model,
            cascade=cascade,
            clean_pred=clean_pred,
            clean_correct=clean_pred == y,
            results=[],
            broken=[],
            x_adv=x.copy(),
            adv_pred=clean_pred.copy(),
            timings={"clean": time.perf_counter() - start},
            notes=[],
        )

    def targets(self, threat_model):
        """Indices of the inputs the next attack of `threat_model` runs on."""
        if not self.cascade:
            return np.flatnonzero(self._result.clean_correct)
        return np.flatnonzero(self._result.robust_under(threat_model))

    def run_attack(self, attack, *, partial=None, on_chunk=None):
        """Runs `attack` on `targets(...)`, records it and returns its row.

        Args:
            attack: An `Attack`.
            partial: A `PartialAttack` of this attack on the same inputs (a
                saved state): its finished inputs are not attacked again.
                Defaults to `None`.
            on_chunk: Called with a `PartialAttack` after each chunk of
                `chunk_size` inputs but the last. Defaults to `None`.
        """
        index = self.targets(attack.threat_model)
        done = self.generate(attack, index, partial=partial, on_chunk=on_chunk)
        return self._record(attack, done)

    def generate(self, attack, index, *, partial=None, on_chunk=None):
        """`attack`'s examples for the inputs `index`, checked and predicted.

        Chunks of `chunk_size` inputs run one after another, one call of
        `attack.generate` each. A seeded attack draws an input's randomness
        from its place in the call (`keras_drelu.attacks.randomness`), so a
        chunk gives the same examples whether or not the run was stopped
        before it.

        Args:
            attack: An `Attack`.
            index: Indices of the inputs to attack.
            partial: As in `run_attack`. Defaults to `None`.
            on_chunk: As in `run_attack`. Defaults to `None`.

        Returns:
            A `PartialAttack` with every input of `index` done.
        """
        x, y = self.x[index], self.y[index]
        if partial is None or not (
            partial.name == attack.name
            and np.array_equal(partial.index, index)
        ):
            partial = PartialAttack(
                attack.name, index, x[:0], np.zeros([0], "int32"), 0.0
            )
        for begin in range(partial.done, len(index), self.chunk_size):
            end = begin + self.chunk_size
            start = time.perf_counter()
            chunk = attack.generate(x[begin:end], y[begin:end])
            check_threat_model(
                attack.name, x[begin:end], chunk, attack.threat_model,
                self.clip_values,
            )
            predictions = self.predict(chunk)
            partial = partial.extended(
                chunk, predictions, time.perf_counter() - start,
                _queries(attack, len(chunk)),
            )
            if on_chunk is not None and end < len(index):
                on_chunk(partial)
        return partial

    def _record(self, attack, done):
        result, threat = self._result, attack.threat_model
        index, adversarial, predictions = (
            done.index, done.adversarial, done.predictions
        )
        fooled = predictions != self.y[index]
        broken = np.zeros(len(self.x), bool)
        broken[index[fooled]] = True
        if threat == self.threat_model:
            first = broken & (result.adv_pred == self.y)
            result.x_adv[first] = adversarial[fooled & first[index]]
            result.adv_pred[first] = predictions[fooled & first[index]]
        else:
            result.notes.append(
                f"{attack.name} uses another threat model ({threat[0]}, "
                f"eps={threat[1]:g}); it is not part of the worst case."
            )
        before = (
            result.robust_under(threat)
            if self.cascade
            else result.clean_correct
        )
        row = AttackResult(
            name=attack.name,
            kind=attack.kind,
            norm=threat[0],
            eps=threat[1],
            accuracy=float((before & ~broken).mean()),
            attacked=len(index),
            broken=int(fooled.sum()),
            seconds=done.seconds,
            queries=_median(done.queries, fooled),
        )
        result.results.append(row)
        result.broken.append(broken)
        result.timings[attack.name] = done.seconds
        return row

    def result(self):
        """The `CascadeResult` so far."""
        return self._result


def _queries(attack, n):
    """The queries `attack` spent on each of the `n` inputs of its last call,
    if it counts them."""
    queries = getattr(attack, "queries", None)
    return None if queries is None or len(queries) != n else queries


def _median(queries, fooled):
    """Median of `queries` over the inputs broken, if there are queries."""
    if queries is None or not fooled.any():
        return None
    return float(np.median(queries[fooled]))


def run_cascade(
    attacks, x, y, predict, *, threat_model, clip_values, cascade=True,
    progress=None, chunk_size=None, result=None, partial=None,
    on_progress=None,
):
    """Runs `attacks` in order with a `Cascade`; returns its result.

    Given the `result` (and `partial`) of an earlier, interrupted run of
    the same attacks on the same inputs, it continues where that run
    stopped: attacks already in `result` are not run again.

    Example:

    >>> import keras
    >>> from keras_drelu.attacks import FGSM, PGD
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> x, y = np.full((4, 2), 0.5, "float32"), np.array([0, 1, 0, 1])
    >>> result = run_cascade(
    ...     [PGD(model, eps=0.1, steps=3), FGSM(model, eps=0.1)], x, y,
    ...     predictor(model, 4), threat_model=("linf", 0.1),
    ...     clip_values=(0.0, 1.0))
    >>> [r.name for r in result.results]
    ['PGD', 'FGSM']

    Args:
        attacks: `Attack` instances, in the order to run them.
        x: Checked inputs.
        y: Their integer labels.
        predict: `predict(x)` returning classes (see `predictor`).
        threat_model: `(norm, eps)` of the evaluation.
        clip_values: `(low, high)` input range.
        cascade: As in `Cascade`. Defaults to `True`.
        progress: Optional `tqdm` bar, advanced once per attack. Defaults
            to `None`.
        chunk_size: As in `Cascade`. Defaults to `None`.
        result: A `CascadeResult` of the first attacks of `attacks`, to
            continue from. Defaults to `None`.
        partial: A `PartialAttack` of the next attack. Defaults to `None`.
        on_progress: Called as `on_progress(result, partial)` after each
            chunk of an attack (`partial` a `PartialAttack`) and after each
            attack (`partial` `None`), e.g. to save them. Defaults to
            `None`.

    Returns:
        A `CascadeResult`.
    """
    runner = Cascade(
        x,
        y,
        predict,
        threat_model=threat_model,
        clip_values=clip_values,
        cascade=cascade,
        chunk_size=chunk_size,
        result=result,
    )
    finished = len(runner.result().results)
    if progress is not None:
        progress.update(finished)

    def on_chunk(chunk):
        if on_progress is not None:
            on_progress(runner.result(), chunk)

    for attack in list(attacks)[finished:]:
        if progress is not None:
            index = runner.targets(attack.threat_model)
            progress.set_postfix_str(f"{attack.name} on {len(index)} inputs")
        runner.run_attack(attack, partial=partial, on_chunk=on_chunk)
        partial = None
        if on_progress is not None:
            on_progress(runner.result(), None)
        if progress is not None:
            progress.update(1)
    return runner.result()
