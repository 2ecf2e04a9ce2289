"""Saved progress of an evaluation, so that a killed one continues.

`evaluate_robustness(..., state_path=...)` keeps an `EvaluationState` in one
`.npz` file: the `CascadeResult` of the attacks finished so far, the
`PartialAttack` of the one running (saved every `SAVE_INTERVAL` seconds), the
outcome of each check and the eps sweep. Run again with the same path, the
evaluation restores them and runs only what is left. A fingerprint of the
model, the inputs, the settings and the attacks is stored with them; a state
saved by another evaluation is refused. Every save writes a temporary file
and renames it into place, so a kill never leaves half a state behind.

The file holds numpy arrays (`np.load` reads them) and one JSON string,
`meta`: `format` (`FORMAT`), `fingerprint` (part -> SHA-256), `run` (the
scalars of the `CascadeResult`: threat model, cascade, attack rows,
timings, notes), `partial` (name and seconds of the running attack),
`checks` (name -> value, flags, seconds) and `sweep` (an `EpsSweep` and
its seconds). The arrays are `clean_pred`, `clean_correct`, `broken` (one
row per finished attack), `x_adv` and `adv_pred` of the `CascadeResult`,
and `partial_index`, `partial_adversarial`, `partial_predictions` (and
`partial_queries` for an attack that counts its queries).
"""

import dataclasses
import hashlib
import io
import json
import os
import pathlib
import re
import time

import keras
import numpy as np

from keras_drelu.evaluation.cascade import CascadeResult
from keras_drelu.evaluation.cascade import PartialAttack
from keras_drelu.evaluation.checks import CheckOutcome
from keras_drelu.evaluation.report import AttackResult
from keras_drelu.evaluation.report import Flag

FORMAT = "keras_drelu.evaluation.state/1"
# Seconds between two saves of an attack part-way through its inputs, as
# AutoAttack's state does: saving rewrites every array of the file.
SAVE_INTERVAL = 60.0

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class EvaluationStateError(ValueError):
    """A state file that cannot be read, or that another evaluation saved."""


def _digest(*chunks):
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk if isinstance(chunk, bytes) else chunk.encode())
    return digest.hexdigest()


def _text(value):
    # Object reprs carry memory addresses, which change from run to run.
    return _ADDRESS.sub("", json.dumps(value, sort_keys=True, default=repr))


def _model_digest(model):
    structure = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if layer._flatten_layers(include_self=False, recursive=False):
            # Containers' configs name their layers, and automatic names
            # depend on what else a process built; their leaves are listed.
            structure.append(type(layer).__name__)
            continue
        try:
            config = dict(layer.get_config())
        except (NotImplementedError, TypeError):
            config = {}
        config.pop("name", None)
        structure.append([type(layer).__name__, config])
    weights = [
        np.ascontiguousarray(keras.ops.convert_to_numpy(variable))
        for variable in model.weights
    ]
    return _digest(
        _text(structure),
        *(_text([w.dtype.str, w.shape]) for w in weights),
        *(w.tobytes() for w in weights),
    )


def fingerprint(model, x, y, *, settings, attacks, cascade, checks, sweep_eps):
    """What identifies an evaluation, part by part (each a SHA-256).

    Example:

    >>> from keras_drelu.attacks import FGSM
    >>> from keras_drelu.evaluation.inputs import check_settings
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> x, y = np.zeros((3, 2), "float32"), np.zeros(3, "int64")
    >>> sorted(fingerprint(model, x, y, settings=check_settings(0.1),
    ...     attacks=[FGSM(model, eps=0.1)], cascade=True, checks=[],
    ...     sweep_eps=[]))
    ['attacks', 'checks', 'inputs', 'model', 'settings']

    Args:
        model: The evaluated model (its layers' classes and settings, and
            its weights).
        x: The evaluated inputs.
        y: Their labels.
        settings: The `EvaluationSettings`.
        attacks: The attacks, in the order they run.
        cascade: Whether they run as a cascade.
        checks: Names of the checks.
        sweep_eps: Radii of the eps sweep.

    Returns:
        A dict from part (`"model"`, `"inputs"`, `"settings"`, `"attacks"`,
        `"checks"`) to its hash.
    """
    x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
    return {
        "model": _model_digest(model),
        "inputs": _digest(
            _text([x.dtype.str, x.shape, y.dtype.str]), x.tobytes(), y.tobytes()
        ),
        "settings": _digest(_text(dataclasses.asdict(settings))),
        "attacks": _digest(
            _text([bool(cascade)] + [[a.name, repr(a)] for a in attacks])
        ),
        "checks": _digest(_text([list(checks), list(sweep_eps)])),
    }


class EvaluationState:
    """The saved progress of one evaluation (see the module's docstring).

    Args:
        path: The state file.
        fingerprint: The evaluation's `fingerprint(...)`.
        save_interval: Seconds between saves of an attack part-way through
            its inputs. Defaults to `None`, `SAVE_INTERVAL`.
    """

    def __init__(self, path, fingerprint, save_interval=None):
        self.path = pathlib.Path(path)
        self.fingerprint = dict(fingerprint)
        self.save_interval = (
            SAVE_INTERVAL if save_interval is None else save_interval
        )
        self.run = None
        self.partial = None
        self.checks = {}
        self.sweep = None
        self._saved_at = -np.inf

    @classmethod
    def open(cls, path, fingerprint, save_interval=None):
        """The state saved at `path` for this evaluation, or a new one.

        Raises:
            EvaluationStateError: If the file cannot be read, or belongs to
                another evaluation (another model, inputs, settings,
                attacks or checks).
        """
        path = pathlib.Path(path)
        if not path.exists():
            return cls(path, fingerprint, save_interval)
        state = cls.load(path, save_interval)
        differ = [
            part
            for part in sorted(set(fingerprint) | set(state.fingerprint))
            if fingerprint.get(part) != state.fingerprint.get(part)
        ]
        if differ:
            raise EvaluationStateError(
                f"The state file {str(path)!r} was saved by another "
                f"evaluation: its {', '.join(differ)} differ from this one's. "
                "Delete it to start afresh, or pass another `state_path`. "
                f"Received: state_path={str(path)!r}"
            )
        return state

    @classmethod
    def load(cls, path, save_interval=None):
        """The state saved at `path`, whatever evaluation saved it."""
        path = pathlib.Path(path)
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
            meta = json.loads(str(arrays.pop("meta")))
            if meta.get("format") != FORMAT:
                raise ValueError(
                    f"format {meta.get('format')!r}, not {FORMAT!r}"
                )
        except (OSError, ValueError, KeyError) as error:
            raise EvaluationStateError(
                f"The state file {str(path)!r} cannot be read ({error}). "
                f"Received: state_path={str(path)!r}"
            ) from error
        state = cls(path, meta["fingerprint"], save_interval)
        state.run = _run_from(meta["run"], arrays)
        state.partial = _partial_from(meta["partial"], arrays)
        state.checks = {
            name: (_outcome(entry), entry["seconds"])
            for name, entry in meta["checks"].items()
        }
        state.sweep = meta["sweep"]
        return state

    def update(self, run, partial=None):
        """Records the cascade's progress; saves it (`partial`: if due)."""
        self.run, self.partial = run, partial
        if partial is None or (
            time.monotonic() - self._saved_at >= self.save_interval
        ):
            self.save()

    def record_check(self, name, outcome, seconds):
        """Records a check's outcome and saves."""
        self.checks[name] = (outcome, seconds)
        self.save()

    def record_sweep(self, sweep, seconds):
        """Records the eps sweep (an `EpsSweep`) and saves."""
        self.sweep = {"sweep": sweep.to_dict(), "seconds": seconds}
        self.save()

    def save(self):
        """Writes the state to `path`, atomically."""
        arrays = {}
        run_meta = partial_meta = None
        if self.run is not None:
            run = self.run
            arrays.update(
                clean_pred=run.clean_pred,
                clean_correct=run.clean_correct,
                broken=np.array(run.broken, bool).reshape(
                    len(run.broken), len(run.clean_pred)
                ),
                x_adv=run.x_adv,
                adv_pred=run.adv_pred,
            )
            run_meta = {
                "threat_model": list(run.threat_model),
                "cascade": run.cascade,
                "results": [dataclasses.asdict(r) for r in run.results],
                "timings": run.timings,
                "notes": run.notes,
            }
        if self.partial is not None:
            arrays.update(
                partial_index=self.partial.index,
                partial_adversarial=self.partial.adversarial,
                partial_predictions=self.partial.predictions,
            )
            if self.partial.queries is not None:
                arrays["partial_queries"] = self.partial.queries
            partial_meta = {
                "name": self.partial.name, "seconds": self.partial.seconds
            }
        meta = {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "run": run_meta,
            "partial": partial_meta,
            "checks": {
                name: {
                    "value": outcome.value,
                    "flags": [dataclasses.asdict(f) for f in outcome.flags],
                    "seconds": seconds,
                }
                for name, (outcome, seconds) in self.checks.items()
            },
            "sweep": self.sweep,
        }
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with open(temporary, "wb") as file:
            file.write(buffer.getvalue())
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        self._saved_at = time.monotonic()


def _run_from(meta, arrays):
    if meta is None:
        return None
    return CascadeResult(
        threat_model=tuple(meta["threat_model"]),
        cascade=meta["cascade"],
        clean_pred=arrays["clean_pred"],
        clean_correct=arrays["clean_correct"],
        results=[AttackResult(**row) for row in meta["results"]],
        broken=list(arrays["broken"]),
        x_adv=arrays["x_adv"],
        adv_pred=arrays["adv_pred"],
        timings=meta["timings"],
        notes=meta["notes"],
    )


def _partial_from(meta, arrays):
    if meta is None:
        return None
    return PartialAttack(
        name=meta["name"],
        index=arrays["partial_index"],
        adversarial=arrays["partial_adversarial"],
        predictions=arrays["partial_predictions"],
        seconds=meta["seconds"],
        queries=arrays.get("partial_queries"),
    )


def _outcome(entry):
    return CheckOutcome(
        entry["value"], [Flag(**flag) for flag in entry["flags"]]
    )
