"""`retrofit evaluate --resume`: an interrupted evaluation continues."""

import json

import keras
import pytest

from keras_drelu.evaluation import EvaluationState
from keras_drelu.evaluation.cascade import Cascade
from retrofit import run as runs
from retrofit.cli import main
from stand_in_backbone import tiny_retrofit

QUICK = [
    "--weights", "none", "--units", "8", "--epochs", "1", "--limit", "120",
    "--batch-size", "32", "--eval-images", "16", "--apgd-steps", "2",
    "--square-queries", "10",
]


@pytest.fixture
def trained_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "_build", tiny_retrofit)
    out = tmp_path / "run"
    status = main(["--backbone", "MobileNetV2", "--dataset", "digits",
                   "--out", str(out), *QUICK, "--no-evaluate"])
    assert status == 0, capsys.readouterr().err
    return out


@pytest.mark.slow
def test_evaluate_resume_continues_an_interrupted_evaluation(
    trained_run, monkeypatch, capsys
):
    out = trained_run
    state_path = out / runs.EVALUATION_STATE
    real_update = EvaluationState.update

    def interrupted_update(self, run, partial=None):
        real_update(self, run, partial)
        if partial is None:  # an attack has finished and been saved
            raise KeyboardInterrupt

    ran = []
    real_run_attack = Cascade.run_attack

    def counted_run_attack(self, attack, **kwargs):
        ran.append(attack.name)
        return real_run_attack(self, attack, **kwargs)

    monkeypatch.setattr(Cascade, "run_attack", counted_run_attack)
    monkeypatch.setattr(EvaluationState, "update", interrupted_update)
    assert main(["evaluate", str(out)]) == 130
    assert "continue with --resume" in capsys.readouterr().err
    first = ran[:]
    assert len(first) == 1 and len(EvaluationState.load(state_path).run.results) == 1

    monkeypatch.setattr(EvaluationState, "update", real_update)
    ran.clear()
    status = main(["evaluate", str(out), "--resume"])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert first[0] not in ran and ran  # the finished attack is not redone
    record = json.loads((out / "run.json").read_text())
    names = [row["name"] for row in record["results"]["robustness"]["attacks"]]
    assert names == first + ran
    assert set(record["results"]["max_values"]) == {"head_drelu"}

    # Other settings do not match the saved state: a clear error.
    status = main(["evaluate", str(out), "--resume", "--eps", "0.05"])
    err = capsys.readouterr().err
    assert status == 2
    assert "was saved by another evaluation" in err
    assert "run without --resume to start afresh" in err
    # Without --resume, the evaluation starts afresh.
    ran.clear()
    assert main(["evaluate", str(out), "--eps", "0.05"]) == 0
    assert ran == names
