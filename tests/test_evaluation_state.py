"""Evaluations that survive a kill: `evaluate_robustness(state_path=...)`."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
from conftest import REPO_ROOT

from keras_drelu.attacks import Attack
from keras_drelu.evaluation import EvaluationState
from keras_drelu.evaluation import EvaluationStateError
from keras_drelu.evaluation import evaluate_robustness
from keras_drelu.evaluation import state as state_module

# An evaluation run in a fresh interpreter: `SCRIPT STATE_PATH|none OUT`.
# Every attack logs each chunk it starts to $LOG, and the one named $STALL
# waits there to be killed.
SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import keras, numpy as np
    from keras_drelu.attacks import APGD, PGD, Square
    from keras_drelu.evaluation import evaluate_robustness

    class Logged:
        def generate(self, x, y):
            with open(os.environ["LOG"], "a") as log:
                log.write(self.name + "\\n")
            if self.name == os.environ.get("STALL"):
                time.sleep(600)
            return super().generate(x, y)

    class LoggedAPGD(Logged, APGD):
        pass

    class LoggedPGD(Logged, PGD):
        pass

    class LoggedSquare(Logged, Square):
        pass

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(),
        keras.layers.Dense(32), keras.layers.ReLU(), keras.layers.Dense(10),
    ], name="net")
    x = np.random.default_rng(0).uniform(size=(48, 8, 8, 1)).astype("float32")
    y = np.random.default_rng(1).integers(0, 10, 48)
    y[:32] = np.argmax(model.predict(x[:32], verbose=0), axis=1)
    attacks = [
        LoggedAPGD(model, eps=0.05, steps=10, seed=0),
        LoggedPGD(model, eps=0.05, steps=10, seed=0),
        LoggedSquare(model, eps=0.05, n_queries=100, seed=0),
    ]
    state_path = None if sys.argv[1] == "none" else sys.argv[1]
    report = evaluate_robustness(
        model, x, y, eps=0.05, suite=attacks, batch_size=16, verbose=False,
        sweep_eps=[0.02, 0.1], overrides={"PGD": {"steps": 5}},
        state_path=state_path,
    )
    summary = report.to_dict()
    summary.pop("timings")
    for row in summary["attacks"]:
        row.pop("seconds")
    with open(sys.argv[2], "w") as file:
        json.dump(summary, file)
    np.save(sys.argv[2] + ".npy", report.x_adv)
    """
)


def _environment(**extra):
    return {
        **os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(REPO_ROOT), **extra,
    }


def _evaluate(tmp_path, name, state_path, **env):
    out = tmp_path / f"{name}.json"
    result = subprocess.run(
        [sys.executable, str(tmp_path / "script.py"), str(state_path), str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env=_environment(LOG=str(tmp_path / f"{name}.log"), **env),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), np.load(f"{out}.npy")


def _evaluate_here(tmp_path, monkeypatch):
    """The script's run without a state file, in this process.

    Its report must equal that of the killed and resumed fresh processes:
    a sixth of this test's time is each process's imports.
    """
    out = tmp_path / "reference.json"
    monkeypatch.setenv("LOG", str(tmp_path / "reference.log"))
    monkeypatch.setattr(sys, "argv", ["script.py", "none", str(out)])
    exec(compile(SCRIPT, "script.py", "exec"), {"__name__": "__main__"})  # noqa: S102
    return json.loads(out.read_text()), np.load(f"{out}.npy")


def _finished_attacks(path):
    try:
        run = EvaluationState.load(path).run
    except EvaluationStateError:
        return 0  # not written yet
    return 0 if run is None else len(run.results)


@pytest.mark.slow
def test_a_killed_evaluation_resumes_to_the_same_report(tmp_path, monkeypatch):
    (tmp_path / "script.py").write_text(SCRIPT)
    reference, reference_adv = _evaluate_here(tmp_path, monkeypatch)

    state_path = tmp_path / "state.npz"
    killed = subprocess.Popen(
        [sys.executable, str(tmp_path / "script.py"), str(state_path),
         str(tmp_path / "killed.json")],
        env=_environment(LOG=str(tmp_path / "killed.log"), STALL="PGD"),
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while _finished_attacks(state_path) < 1:
            assert killed.poll() is None, "the evaluation ended on its own"
            assert time.monotonic() < deadline, "no attack finished in time"
            time.sleep(0.1)
        os.kill(killed.pid, signal.SIGKILL)
    finally:
        killed.kill()
        killed.wait()
    assert killed.returncode == -signal.SIGKILL
    started = (tmp_path / "killed.log").read_text().split()
    assert set(started[:-1]) == {"APGD-CE"} and started[-1] == "PGD"
    assert not (tmp_path / "killed.json").exists()

    resumed, resumed_adv = _evaluate(tmp_path, "resumed", state_path)
    # The finished attack was not run again; the others ran on every chunk.
    assert "APGD-CE" not in (tmp_path / "resumed.log").read_text().split()
    assert resumed == reference
    np.testing.assert_array_equal(resumed_adv, reference_adv)
    assert [row["name"] for row in resumed["attacks"]] == [
        "APGD-CE", "PGD", "Square"
    ]
    assert not list(tmp_path.glob(".*.tmp"))


class Counted(Attack):
    """Moves each input by `shift` (deterministic); counts its calls.

    With `fail_at`, its call number `fail_at` raises, as a kill would stop
    it part-way through its inputs.
    """

    name = "Counted"

    def __init__(self, model, *, eps, shift, calls, fail_at=None):
        super().__init__(model, eps=eps)
        self.shift, self.calls, self.fail_at = shift, calls, fail_at

    def get_config(self):
        return super().get_config() | {"shift": self.shift}

    def generate(self, x, y):
        self.calls.append(len(x))
        if len(self.calls) == self.fail_at:
            raise KeyboardInterrupt
        return np.clip(x - self.shift, 0.0, 1.0).astype("float32")


def _threshold_model():
    """Class 0 exactly when the mean input is above 0.5."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.set_weights(
        [np.tile([[0.25, -0.25]], (4, 1)).astype("float32"),
         np.array([-0.5, 0.5], "float32")]
    )
    return model


def test_an_attack_stopped_part_way_continues_from_its_last_chunk(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(state_module, "SAVE_INTERVAL", 0.0)
    model = _threshold_model()
    x = np.linspace(0.55, 0.95, 40, dtype="float32")[:, None].repeat(4, 1)
    y = np.zeros(40, "int64")

    def evaluate(calls, fail_at=None, state_path=None):
        attack = Counted(
            model, eps=0.2, shift=0.2, calls=calls, fail_at=fail_at
        )
        return evaluate_robustness(
            model, x, y, eps=0.2, suite=[attack], batch_size=8,
            sweep_eps=[0.1], overrides={"PGD": {"steps": 2}}, verbose=False,
            state_path=state_path,
        )

    reference = evaluate([])
    state_path = tmp_path / "state.npz"
    with pytest.raises(KeyboardInterrupt):
        evaluate(calls := [], fail_at=4, state_path=state_path)
    saved = EvaluationState.load(state_path)
    assert saved.run.results == [] and saved.partial.done == 24
    resumed = evaluate(calls := [], state_path=state_path)
    assert calls == [8, 8]  # only the last two chunks of five
    assert resumed.accuracy == reference.accuracy
    np.testing.assert_array_equal(resumed.robust, reference.robust)
    np.testing.assert_array_equal(resumed.x_adv, reference.x_adv)
    # Run once more, the finished evaluation is read back whole: attacks,
    # checks and sweep, with the times they took then.
    again = evaluate(calls := [], state_path=state_path)
    assert calls == [] and again.to_dict() == resumed.to_dict()
    assert set(again.timings) == {
        "clean", "Counted", "randomness check", "output check",
        "zero-gradient check", "large-eps check", "eps sweep",
    }


def test_a_state_from_another_evaluation_is_refused(tmp_path):
    model = _threshold_model()
    x = np.full((6, 4), 0.7, "float32")
    y = np.zeros(6, "int64")
    state_path = tmp_path / "state.npz"

    def evaluate(model=model, eps=0.2, x=x):
        return evaluate_robustness(
            model, x, y, eps=eps,
            suite=[Counted(model, eps=eps, shift=0.1, calls=[])],
            checks_enabled=False, verbose=False, state_path=state_path,
        )

    evaluate()
    with pytest.raises(EvaluationStateError, match="its attacks, settings differ"):
        evaluate(eps=0.3)
    with pytest.raises(EvaluationStateError, match="its inputs differ"):
        evaluate(x=x + 0.01)
    other = _threshold_model()
    other.layers[0].bias.assign([-0.4, 0.4])
    with pytest.raises(EvaluationStateError, match="its model differ"):
        evaluate(model=other)
    state_path.write_bytes(b"not a state")
    with pytest.raises(EvaluationStateError, match="cannot be read"):
        evaluate()
