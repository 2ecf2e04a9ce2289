import dataclasses
import json
import math
import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_drelu import DReLU
from retrofit import run as runs
from retrofit.cli import main
from stand_in_backbone import tiny_retrofit

RESULTS_DIR = pathlib.Path(__file__).resolve().parent.parent / "docs" / "results"
TINY = [
    "--weights", "none", "--units", "8", "--epochs", "1", "--limit", "120",
    "--batch-size", "32", "--eval-images", "16", "--apgd-steps", "2",
    "--square-queries", "10",
]


def run_cli(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_usage_error(capsys, argv, message):
    status, _, err = run_cli(capsys, *argv)
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("retrofit: error: ")
    assert message in lines[0]
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One finished quick-start run, shared by the tests that inspect it.

    Around a tiny stand-in for the backbone (`tiny_retrofit`, in
    tests/stand_in_backbone.py), as in the other tests here: they are about
    the command, its files and its export. A real backbone goes through the
    same command in tests/test_experiments.py (`pretrained_backbone.py
    --quick`: MobileNetV2 pretrained there, then probed, fine-tuned and
    evaluated by `retrofit --weights PATH`, which stops before the export);
    MobileNetV2 took 75 s of the suite here, nearly all of it tracing.
    """
    out = tmp_path_factory.mktemp("runs") / "digits"
    argv = ["--backbone", "MobileNetV2", "--dataset", "digits", "--out", str(out), *TINY]
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(buffer):
        patch.setattr(runs, "_build", tiny_retrofit)
        status = main(argv)
    assert status == 0
    return out, buffer.getvalue()


def test_quick_start_end_to_end(digits_run):
    out, printed = digits_run
    assert "clean test accuracy:" in printed
    assert "Worst-case robust accuracy" in printed
    assert f"SavedModel for serving: {out / 'serving'}" in printed
    record = json.loads((out / "run.json").read_text())
    assert record["stage"] == "exported"
    assert record["recipe"] == "drelu"
    assert record["settings"]["backbone"] == "MobileNetV2"
    assert (record["settings"]["placement"], record["settings"]["activation"]) == (
        "head", "drelu"
    )
    results = record["results"]
    assert 0.0 <= results["clean_test_accuracy"] <= 1.0
    assert set(results["max_values"]) == {"head_drelu"}
    assert results["robustness"]["suite"] == "adaptive"
    for name in ("model.keras", "report.md", "report.json", "report.csv", "examples.png"):
        assert (out / name).is_file(), name
    model = keras.saving.load_model(out / "model.keras")
    assert model.name == "tiny_head_drelu_retrofit"
    assert isinstance(model.get_layer("head_drelu"), DReLU)
    assert not list(out.glob("**/.*.tmp*"))  # no half-written files left


def test_saved_model_cli_gives_the_keras_classes(digits_run, tmp_path):
    out, _ = digits_run
    model = keras.saving.load_model(out / "model.keras")
    images = np.random.default_rng(0).integers(
        0, 256, (6, *model.input_shape[1:]), dtype=np.uint8
    )
    np.save(tmp_path / "images.npy", images)
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    result = subprocess.run(
        [str(cli), "run", "--dir", str(out / "serving"), "--tag_set", "serve",
         "--signature_def", "serving_default",
         "--inputs", f"images={tmp_path / 'images.npy'}",
         "--outdir", str(tmp_path / "outputs")],
        capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    class_id = np.load(tmp_path / "outputs" / "class_id.npy")
    probabilities = np.load(tmp_path / "outputs" / "probabilities.npy")
    logits = model.predict(images.astype("float32") / 255.0, verbose=0)
    np.testing.assert_array_equal(class_id, logits.argmax(axis=1))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_evaluate_and_export_commands(capsys, tmp_path, monkeypatch):
    # Around the tiny stand-in for the backbone: the commands are tested
    # here (as in the quick start above).
    monkeypatch.setattr(runs, "_build", tiny_retrofit)
    out = tmp_path / "run"
    status, printed, err = run_cli(
        capsys, "--backbone", "MobileNetV2", "--dataset", "digits",
        "--out", str(out), *TINY, "--no-evaluate", "--no-export",
    )
    assert status == 0, err
    record = json.loads((out / "run.json").read_text())
    assert record["stage"] == "trained" and "serving" not in record
    assert not (out / "serving").exists()
    assert f"not exported; 'retrofit export {out}' exports it" in printed
    status, printed, err = run_cli(
        capsys, "evaluate", str(out), "--eps", "4/255", "--suite", "standard",
        "--eval-images", "8", "--apgd-steps", "2", "--square-queries", "5",
    )
    assert status == 0, err
    assert "suite `standard`" in printed
    record = json.loads((out / "run.json").read_text())
    assert record["settings"]["eps"] == pytest.approx(4 / 255)
    status, printed, err = run_cli(capsys, "export", str(out), "--to", str(tmp_path / "served"))
    assert status == 0, err
    assert (tmp_path / "served" / "saved_model.pb").is_file()
    assert "serving" not in json.loads((out / "run.json").read_text())
    # Into the run's own serving/: recorded in run.json, the stage kept.
    status, printed, err = run_cli(capsys, "export", str(out))
    assert status == 0, err
    record = json.loads((out / "run.json").read_text())
    assert record["serving"] == str(out / "serving")
    assert record["stage"] == "trained"
    assert (out / "serving" / "saved_model.pb").is_file()


@pytest.mark.shared_data
def test_cifar10_subset_npz(shared_data_dir, tmp_path, capsys, monkeypatch):
    # The data path and the input placement, around the tiny stand-in for
    # the backbone: MobileNetV2 runs end to end in the quick start above,
    # and on this file in tests/test_experiments.py (pretrained_backbone).
    monkeypatch.setattr(runs, "_build", tiny_retrofit)
    out = tmp_path / "cifar"
    status, printed, err = run_cli(
        capsys, "--backbone", "MobileNetV2", "--dataset", "npz",
        "--data-path", str(shared_data_dir / "cifar10-subset.npz"),
        "--placement", "input", "--suite", "standard", "--out", str(out), *TINY,
    )
    assert status == 0, err
    assert (
        "data: cifar10-subset, 10 classes, images (32, 32, 3); "
        "mixed precision: off; XLA: off"
    ) in printed
    record = json.loads((out / "run.json").read_text())
    assert set(record["results"]["max_values"]) == {"input_drelu"}


def test_interrupted_run_resumes_without_repeating_epochs(tmp_path, capsys, monkeypatch):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    real_train = runs.train

    def interrupted_train(*args, **kwargs):
        return real_train(*args, **{**kwargs, "callbacks": [*kwargs["callbacks"], Interrupt()]})

    # A tiny stand-in for the backbone: this test is about resuming, and
    # tracing a real backbone's train step twice would dominate it.
    monkeypatch.setattr(runs, "_build", tiny_retrofit)
    out = tmp_path / "run"
    argv = ["--backbone", "MobileNetV2", "--dataset", "digits", "--out", str(out),
            *TINY, "--epochs", "2", "--no-evaluate"]
    monkeypatch.setattr(runs, "train", interrupted_train)
    status, _, err = run_cli(capsys, *argv)
    assert status == 130
    assert "--resume" in err
    record = json.loads((out / "run.json").read_text())
    assert record["stage"] == "created"
    assert not (out / "model.keras").exists()
    first = record["history"]["finetune"]
    assert first["epochs"] == [0]  # written as the epoch ended

    monkeypatch.setattr(runs, "train", real_train)
    status, printed, err = run_cli(capsys, *argv, "--resume")
    assert status == 0, err
    assert "Epoch 2/2" in printed and "Epoch 1/2" not in printed  # not repeated
    record = json.loads((out / "run.json").read_text())
    assert record["stage"] == "exported"
    assert "results" not in record  # --no-evaluate
    history = record["history"]["finetune"]
    assert history["epochs"] == [0, 1]  # every epoch, not only those resumed
    assert history["loss"][0] == first["loss"][0]
    assert len(history["val_task_loss"]) == 2
    assert (out / "serving" / "saved_model.pb").is_file()


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--backbone", "--dataset", "--placement", "--activation", "--lam",
                   "--max-value", "--epochs", "--eps", "--weights", "--resume",
                   "--overwrite", "--suite", "--recipe", "--mixup-alpha", "--no-export"):
        assert option in text
    assert "--head" not in text
    # Choices and their help come from the tables.
    assert "{head,input}" in text and "{drelu,srelu,relu,splash}" in text
    assert "{auto,standard,drelu,pgd-at,fgsm-at,trades,mtlat}" in text
    text = " ".join(text.split())
    assert "attack steps per batch; for pgd-at, trades, mtlat (default: pgd-at 10, " \
        "trades 10, mtlat 1)" in text
    assert "fixed cap; required for srelu" in text


def test_backbones_command(capsys):
    status, printed, _ = run_cli(capsys, "backbones")
    assert status == 0
    assert "InceptionV3          min input 75x75" in printed


class TestBadInput:
    def base(self, tmp_path, *extra):
        return ["--backbone", "MobileNetV2", "--dataset", "digits",
                "--out", str(tmp_path / "out"), *TINY, *extra]

    def test_unknown_backbone_lists_close_matches(self, capsys, tmp_path):
        argv = self.base(tmp_path)
        argv[1] = "InceptionV4"
        assert_usage_error(capsys, argv, "did you mean InceptionV3")

    def test_unknown_dataset(self, capsys, tmp_path):
        argv = self.base(tmp_path)
        argv[3] = "imagenet22k"
        assert_usage_error(capsys, argv, "dataset='imagenet22k'")

    def test_missing_npz(self, capsys, tmp_path):
        assert_usage_error(
            capsys,
            self.base(tmp_path, "--dataset", "npz", "--data-path", str(tmp_path / "no.npz")),
            "does not exist",
        )

    def test_malformed_npz(self, capsys, tmp_path):
        path = tmp_path / "bad.npz"
        np.savez(path, x_train=np.zeros((4, 8, 8)), labels=np.zeros(4))
        assert_usage_error(
            capsys, self.base(tmp_path, "--dataset", "npz", "--data-path", str(path)),
            str(path),
        )
        assert not (tmp_path / "out").exists()

    def test_missing_tiny_imagenet_directory(self, capsys, tmp_path):
        empty = tmp_path / "tiny"
        empty.mkdir()
        assert_usage_error(
            capsys,
            self.base(tmp_path, "--dataset", "tiny_imagenet", "--data-path", str(empty)),
            str(empty),
        )

    def test_negative_lam(self, capsys, tmp_path):
        assert_usage_error(capsys, self.base(tmp_path, "--lam=-1"), "lam=-1.0")

    @pytest.mark.parametrize("eps", ["0", "1.5", "-0.1"])
    def test_eps_outside_range(self, capsys, tmp_path, eps):
        assert_usage_error(
            capsys, self.base(tmp_path, f"--eps={eps}"), "should be a number in (0, 1)"
        )

    @pytest.mark.parametrize(
        "extra, message",
        [
            (["--activation", "relu", "--lam", "0.1"],
             "`lam` does not apply to activation='relu'"),
            (["--activation", "srelu"], "activation='srelu' needs the argument `max_value`"),
            (["--recipe", "pgd-at", "--beta", "1"], "`beta` does not apply to recipe='pgd-at'"),
            (["--recipe", "standard", "--train-eps", "0.1"],
             "`eps` does not apply to recipe='standard'"),
            (["--recipe", "drelu", "--natural-epochs", "2"],
             "`natural_epochs` applies to adversarial recipes"),
        ],
    )
    def test_settings_checked_through_the_tables(self, capsys, tmp_path, extra, message):
        assert_usage_error(capsys, self.base(tmp_path, *extra), message)
        assert not (tmp_path / "out").exists()

    def test_unknown_strategy(self, capsys, tmp_path):
        with pytest.raises(SystemExit):
            main(self.base(tmp_path, "--strategy", "gpus"))
        assert "invalid choice: 'gpus'" in capsys.readouterr().err

    def test_recipe_needing_caps_refused_before_anything_is_written(
        self, capsys, tmp_path, monkeypatch
    ):
        monkeypatch.setattr(runs, "_build", tiny_retrofit)
        assert_usage_error(
            capsys, self.base(tmp_path, "--activation", "relu", "--recipe", "drelu"),
            "needs a model with at least one DReLU",
        )
        assert not (tmp_path / "out").exists()

    def test_existing_run_needs_overwrite(self, capsys, tmp_path):
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "run.json").write_text("{}")
        assert_usage_error(capsys, self.base(tmp_path), "--overwrite")
        assert (tmp_path / "out" / "run.json").read_text() == "{}"

    def test_missing_weights_file(self, capsys, tmp_path):
        assert_usage_error(
            capsys, self.base(tmp_path, "--weights", str(tmp_path / "w.weights.h5")),
            "does not exist",
        )

    def test_weights_file_that_does_not_fit(self, capsys, tmp_path):
        path = tmp_path / "other.weights.h5"
        keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save_weights(path)
        assert_usage_error(capsys, self.base(tmp_path, "--weights", str(path)), "does not fit")
        assert not (tmp_path / "out").exists()  # nothing written for a bad setting

    def test_resume_without_a_run(self, capsys, tmp_path):
        assert_usage_error(capsys, self.base(tmp_path, "--resume"), "nothing to resume")

    def test_run_of_an_older_version(self, capsys, tmp_path):
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "run.json").write_text(
            json.dumps({"settings": {"backbone": "MobileNetV2", "dataset": "digits",
                                     "head": "dense"}, "stage": "created"})
        )
        assert_usage_error(
            capsys, self.base(tmp_path, "--resume"), "written by an older version"
        )

    def test_evaluate_without_a_run(self, capsys, tmp_path):
        assert_usage_error(capsys, ["evaluate", str(tmp_path)], "holds no run")


@pytest.mark.parametrize("recipe", ["pgd-at", "trades", "mtlat"])
def test_adversarial_recipes_run_from_the_cli(recipe, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runs, "_build", tiny_retrofit)
    out = tmp_path / recipe
    status, printed, err = run_cli(
        capsys, "--backbone", "MobileNetV2", "--dataset", "digits", "--out", str(out),
        *TINY, "--recipe", recipe, "--attack-steps", "2", "--no-evaluate",
        "--no-export",
    )
    assert status == 0, err
    assert f"with recipe {recipe!r}" in printed
    record = json.loads((out / "run.json").read_text())
    assert record["recipe"] == recipe
    assert record["recipe_settings"]["attack_steps"] == 2
    assert record["recipe_settings"]["eps"] == pytest.approx(8 / 255)
    assert record["stage"] == "trained"


def test_initial_max_value_auto_calibrates_the_caps(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runs, "_build", tiny_retrofit)
    out = tmp_path / "auto"
    status, printed, err = run_cli(
        capsys, "--backbone", "MobileNetV2", "--dataset", "digits", "--out", str(out),
        *TINY, "--initial-max-value", "auto", "--calibration-quantile", "0.9",
        "--no-evaluate", "--no-export",
    )
    assert status == 0, err
    assert "calibrated caps of head_drelu at the 0.9 quantile" in printed
    record = json.loads((out / "run.json").read_text())
    assert record["settings"]["initial_max_value"] == "auto"
    calibration = record["calibration"]
    assert calibration["quantile"] == 0.9
    # The caps are the 0.9 quantile of each unit's inputs over the first
    # training images, after the ReLU (numpy on the same pipeline).
    settings = runs.RunSettings(**record["settings"])
    splits = runs.load_data(settings)
    images = np.concatenate([x for x, _ in splits.train.unbatch().batch(512)
                             .take(1).as_numpy_iterator()])
    assert calibration["examples"] == len(images) == min(
        runs.CALIBRATION_EXAMPLES, len(images))
    model = tiny_retrofit(settings.model_settings(), splits.info)
    model.load_weights(out / "checkpoints" / runs.CALIBRATED)
    head = keras.Model(model.inputs, model.get_layer("head_dense").output)
    expected = np.quantile(np.maximum(head.predict(images, verbose=0), 0), 0.9,
                           axis=0)
    # A unit never active in the batch starts at the smallest positive cap.
    expected = np.where(expected > 0, expected, expected[expected > 0].min())
    caps = keras.ops.convert_to_numpy(model.get_layer("head_drelu").max_value)
    np.testing.assert_allclose(caps, expected, rtol=1e-4, atol=2e-6)
    assert calibration["max_values"]["head_drelu"]["median"] == pytest.approx(
        float(np.median(caps)), rel=1e-6)
    assert 0 < caps.max() < 50  # not the default 100
    # A run rebuilt inside a distribution strategy starts from these caps too.
    rebuilt = runs._rebuild(settings, splits.info, runs.RunDirectory(out), [], True)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(rebuilt.get_layer("head_drelu").max_value), caps)


@pytest.mark.parametrize("extra, message", [
    (["--calibration-quantile", "0.9"],
     "--calibration-quantile applies with --initial-max-value auto"),
    (["--initial-max-value", "auto", "--calibration-quantile", "1.5"],
     "calibration_quantile=1.5"),
    (["--activation", "relu", "--initial-max-value", "auto"],
     "`initial_max_value` does not apply to activation='relu'"),
    (["--recipe", "drelu", "--inner-gradient", "exact"],
     "`inner_gradient` does not apply to recipe='drelu'"),
])
def test_calibration_and_inner_gradient_flags_are_checked(extra, message, capsys,
                                                          tmp_path):
    assert_usage_error(
        capsys, ["--backbone", "MobileNetV2", "--dataset", "digits",
                 "--out", str(tmp_path / "out"), *TINY, *extra], message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("given, recorded", [(None, "bpda"), ("exact", "exact")])
def test_inner_gradient_flag_reaches_the_recipe(given, recorded, tmp_path, capsys,
                                                monkeypatch):
    monkeypatch.setattr(runs, "_build", tiny_retrofit)
    out = tmp_path / "run"
    flag = ["--inner-gradient", given] if given else []
    status, _, err = run_cli(
        capsys, "--backbone", "MobileNetV2", "--dataset", "digits", "--out", str(out),
        *TINY, "--recipe", "fgsm-at", "--no-evaluate", "--no-export", *flag,
    )
    assert status == 0, err
    record = json.loads((out / "run.json").read_text())
    assert record["settings"]["inner_gradient"] == given
    assert record["recipe_settings"]["inner_gradient"] == recorded
    assert "val_task_loss" in record["history"]["finetune"]
    assert "cap_penalty" in record["history"]["finetune"]


def test_help_documents_calibration_and_inner_gradient(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--inner-gradient {exact,bpda}" in text
    assert "(default: bpda for a model with capped ReLUs, else exact)" in text
    assert "initial cap, or auto: each cap at a quantile" in text
    assert f"(default: {runs.CALIBRATION_QUANTILE})" in text


KILLED_RUN = """
import os, signal, sys
import keras
sys.path.insert(0, {tests!r})
from retrofit import run as runs
from retrofit.cli import main
from stand_in_backbone import tiny_retrofit

class Kill(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

real_train = runs.train

def killed_train(*args, callbacks, **kwargs):
    # The kill comes after the backup of epoch 1, or between its record in
    # run.json and its backup.
    at = len(callbacks) if {after_backup} else len(callbacks) - 1
    return real_train(*args, callbacks=[*callbacks[:at], Kill(), *callbacks[at:]], **kwargs)

runs._build = tiny_retrofit
runs.train = killed_train
main({argv!r})
"""


@pytest.mark.parametrize("after_backup", [True, False])
def test_killed_run_keeps_every_epoch_in_run_json(after_backup, tmp_path, capsys,
                                                  monkeypatch):
    out = tmp_path / "run"
    argv = ["--backbone", "MobileNetV2", "--dataset", "digits", "--out", str(out),
            *TINY, "--epochs", "4", "--no-evaluate"]
    script = KILLED_RUN.format(tests=str(pathlib.Path(__file__).parent),
                               after_backup=after_backup, argv=argv)
    killed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert killed.returncode == -9, killed.stderr[-3000:]
    before = json.loads((out / "run.json").read_text())["history"]["finetune"]
    assert before["epochs"] == [0, 1]  # each epoch recorded as it ended

    monkeypatch.setattr(runs, "_build", tiny_retrofit)
    status, printed, err = run_cli(capsys, *argv, "--resume")
    assert status == 0, err
    # Epoch 1 runs again only if its backup was not saved.
    assert ("Epoch 2/4" in printed) is not after_backup
    history = json.loads((out / "run.json").read_text())["history"]["finetune"]
    assert history["epochs"] == [0, 1, 2, 3]
    assert set(history) == set(before)
    assert all(len(values) == 4 for values in history.values())
    assert history["loss"][0] == before["loss"][0]
    if after_backup:
        assert history["loss"][1] == before["loss"][1]


def test_same_seed_builds_and_calibrates_the_same_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runs, "_build", tiny_retrofit)

    def calibrated(name, seed):
        out = tmp_path / name
        status, _, err = run_cli(
            capsys, "--backbone", "MobileNetV2", "--dataset", "digits", "--out",
            str(out), *TINY, "--initial-max-value", "auto", "--seed", str(seed),
            "--no-evaluate", "--no-export",
        )
        assert status == 0, err
        settings = runs.RunSettings(**json.loads((out / "run.json").read_text())["settings"])
        model = tiny_retrofit(settings.model_settings(), runs.load_data(settings).info)
        model.load_weights(out / "checkpoints" / runs.CALIBRATED)
        return [keras.ops.convert_to_numpy(w) for w in model.weights]

    first, again, other = calibrated("a", 3), calibrated("b", 3), calibrated("c", 4)
    for left, right in zip(first, again):
        np.testing.assert_array_equal(left, right)
    assert any(not np.array_equal(left, right) for left, right in zip(first, other))


def test_same_seed_trains_alike_whatever_seed_the_process_had(tmp_path, capsys,
                                                            monkeypatch):
    # The data's shuffle mixes its seed with TensorFlow's global seed as it
    # is when the pipeline is made: a run seeds it first, so an earlier
    # keras.utils.set_random_seed changes nothing.
    monkeypatch.setattr(runs, "_build", tiny_retrofit)

    def trained(name, earlier_seed):
        keras.utils.set_random_seed(earlier_seed)
        out = tmp_path / name
        status, _, err = run_cli(
            capsys, "--backbone", "MobileNetV2", "--dataset", "digits", "--out",
            str(out), *TINY, "--seed", "3", "--no-evaluate",
        )
        assert status == 0, err
        return json.loads((out / "run.json").read_text())["history"]

    first, other = trained("a", 11), trained("b", 12)
    assert first == other
    assert all(np.isfinite(value) for value in first["finetune"]["loss"])


@pytest.mark.parametrize("extra, recipe, note", [
    (["--eps", "8/255"], runs.robust_recipe().name, False),
    ([], "drelu", True),
    (["--eps", "8/255", "--recipe", "drelu"], "drelu", True),
    (["--activation", "relu"], "standard", False),
])
def test_eps_given_picks_the_robust_recipe(extra, recipe, note, tmp_path, capsys,
                                           monkeypatch):
    monkeypatch.setattr(runs, "_build", tiny_retrofit)
    out = tmp_path / "run"
    status, printed, err = run_cli(
        capsys, "--backbone", "MobileNetV2", "--dataset", "digits", "--out", str(out),
        *TINY, *extra, "--no-evaluate",
    )
    assert status == 0, err
    record = json.loads((out / "run.json").read_text())
    assert record["recipe"] == recipe
    notes = [line for line in printed.splitlines() if line == runs.CAPS_ALONE]
    assert len(notes) == (1 if note else 0)
    # The note links to the committed results that show it.
    (linked,) = re.findall(r"docs/results/(\S+\.md)", runs.CAPS_ALONE)
    assert (RESULTS_DIR / linked).is_file()
    # The evaluation radius stays 8/255 whether given or not.
    assert runs.RunSettings(**record["settings"]).evaluation_eps == pytest.approx(8 / 255)


def test_robust_recipe_is_the_table_entry_marked_robust_default(monkeypatch):
    from keras_drelu.training import RECIPES

    marked = [recipe.name for recipe in RECIPES.values() if recipe.robust_default]
    assert marked == [runs.robust_recipe().name]
    assert RECIPES[marked[0]].adversarial
    monkeypatch.setitem(RECIPES, "pgd-at-2", dataclasses.replace(
        RECIPES["pgd-at"], name="pgd-at-2", robust_default=True))
    assert runs.robust_recipe().name == "pgd-at-2"  # the last registered wins
    with pytest.raises(ValueError, match="not adversarial"):
        dataclasses.replace(RECIPES["standard"], robust_default=True)


def test_robust_path_end_to_end(tmp_path, capsys, monkeypatch):
    """Probe with the backbone frozen, then fine-tune, both adversarial,
    with the radius ramped, then the adaptive evaluation."""
    monkeypatch.setattr(runs, "_build", tiny_retrofit)
    out = tmp_path / "robust"
    status, printed, err = run_cli(
        capsys, "--backbone", "MobileNetV2", "--dataset", "digits", "--out", str(out),
        *TINY, "--eps", "8/255", "--attack-steps", "2", "--freeze-epochs", "1",
        "--eps-ramp", "0.5", "--initial-max-value", "auto",
    )
    assert status == 0, err
    robust = runs.robust_recipe().name
    assert f"[frozen] training 1 epoch(s) with recipe {robust!r}" in printed
    assert f"[finetune] training 1 epoch(s) with recipe {robust!r}" in printed
    assert runs.CAPS_ALONE not in printed
    assert "Worst-case robust accuracy" in printed
    record = json.loads((out / "run.json").read_text())
    assert record["settings"]["eps_ramp"] == 0.5
    assert record["phases_done"] == ["frozen", "finetune"]
    assert set(record["history"]) == {"frozen", "finetune"}
    # Half an epoch of the training split, in steps, in the phases that ramp.
    settings = runs.RunSettings(**record["settings"])
    splits = runs.load_data(settings)
    assert record["recipe_settings"]["eps_ramp_steps"] == math.ceil(0.5 * len(splits.train))
    assert record["recipe_settings"]["inner_gradient"] == "bpda"
    assert record["results"]["robustness"]["suite"] == "adaptive"
    # The probe trained the layers around the backbone, not the backbone.
    calibrated = tiny_retrofit(settings.model_settings(), splits.info)
    calibrated.load_weights(out / "checkpoints" / runs.CALIBRATED)
    probed = tiny_retrofit(settings.model_settings(), splits.info)
    probed.load_weights(out / "checkpoints" / "frozen.weights.h5")
    for layer in ("tiny", "head_dense"):
        before = calibrated.get_layer(layer).get_weights()[0]
        after = probed.get_layer(layer).get_weights()[0]
        assert np.array_equal(before, after) is (layer == "tiny"), layer


def test_natural_epochs_are_a_phase_of_their_own(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runs, "_build", tiny_retrofit)
    out = tmp_path / "run"
    status, printed, err = run_cli(
        capsys, "--backbone", "MobileNetV2", "--dataset", "digits", "--out", str(out),
        *TINY, "--recipe", "pgd-at", "--attack-steps", "1", "--natural-epochs", "1",
        "--no-evaluate",
    )
    assert status == 0, err
    assert "[natural] training 1 epoch(s) with recipe 'drelu'" in printed
    record = json.loads((out / "run.json").read_text())
    assert record["phases_done"] == ["natural", "finetune"]
    assert record["recipe"] == "pgd-at"
    assert record["recipe_settings"]["attack_steps"] == 1


@pytest.mark.parametrize("extra, message", [
    (["--eps-ramp", "2"], "`eps_ramp` does not apply to recipe='drelu'"),
    (["--recipe", "pgd-at", "--eps-ramp=-1"], "eps_ramp=-1"),
])
def test_eps_ramp_is_checked(extra, message, capsys, tmp_path):
    assert_usage_error(
        capsys, ["--backbone", "MobileNetV2", "--dataset", "digits",
                 "--out", str(tmp_path / "out"), *TINY, *extra], message)
    assert not (tmp_path / "out").exists()
