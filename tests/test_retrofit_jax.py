"""`retrofit` end to end with `KERAS_BACKEND=jax`, and its SavedModel served
by a TensorFlow process without this project."""

import json
import pathlib

import keras
import numpy as np
import pytest
from blocked_imports import blocking

from keras_drelu import DReLU

RETROFIT_SCRIPT = """
import contextlib, io, sys
import keras
sys.path.insert(0, TESTS)
from retrofit import run as runs
from retrofit.cli import main
from stand_in_backbone import tiny_retrofit

assert keras.backend.backend() == "jax"

# The run's model around a tiny stand-in for the backbone
# (tests/stand_in_backbone.py): this test is about the backend, not the backbone.
runs._build = tiny_retrofit
errors = io.StringIO()
with contextlib.redirect_stderr(errors):
    refused = main(ARGV + ["--strategy", "mirrored"])
print(f"--strategy mirrored: {refused} {errors.getvalue().strip()}")
sys.exit(main(ARGV))
"""

SERVE_SCRIPT = blocking("keras_drelu", "retrofit") + """
import json
import numpy as np, tensorflow as tf
serve = tf.saved_model.load(SERVING).signatures["serving_default"]
images = np.load(IMAGES)
result = serve(images=tf.constant(images))
print(json.dumps(dict(
    class_id=result["class_id"].numpy().tolist(),
    sums=result["probabilities"].numpy().sum(axis=1).tolist(),
    empty=list(serve(images=tf.constant(images[:0]))["class_id"].shape),
    loaded=sorted(m for m in sys.modules
                  if m.partition(".")[0] in ("keras_drelu", "retrofit")),
)))
"""


@pytest.mark.slow
def test_retrofit_trades_on_jax_exports_a_saved_model_that_serves(
    tmp_path, run_python
):
    out = tmp_path / "run"
    argv = [
        "--backbone", "MobileNetV2", "--dataset", "digits", "--out", str(out),
        "--weights", "none", "--units", "8", "--epochs", "1",
        # 142 digits: 128 train in whole batches of 32 (one compiled train
        # step, not a second one for a last, smaller batch) and 14 held out.
        "--limit", "142", "--batch-size", "32", "--eps", "8/255",
        "--recipe", "trades", "--attack-steps", "2", "--suite", "standard",
        # Keras' preprocessing layers run in TensorFlow inside tf.data; the
        # flip-crop preset failed on JAX while it was a keras.Sequential.
        "--augment", "flip-crop",
        "--eval-images", "16", "--apgd-steps", "2", "--square-queries", "10",
    ]
    printed = run_python(
        RETROFIT_SCRIPT.replace("ARGV", repr(argv)).replace(
            "TESTS", repr(str(pathlib.Path(__file__).parent))),
        env={"KERAS_BACKEND": "jax"}, timeout=600,
    )
    assert "XLA: on" in printed
    assert (
        "--strategy mirrored: 2 retrofit: error: --strategy mirrored picks a "
        "tf.distribute strategy, for the TensorFlow backend; this run uses "
        "'jax'"
    ) in printed
    record = json.loads((out / "run.json").read_text())
    assert record["stage"] == "exported"
    assert record["recipe"] == "trades"
    history = record["history"]["finetune"]
    assert np.isfinite(history["loss"]).all() and history["epochs"] == [0]
    assert 0.0 <= record["results"]["clean_test_accuracy"] <= 1.0

    # Served by TensorFlow in a process that cannot import this project.
    model = keras.saving.load_model(out / "model.keras")
    assert isinstance(model.get_layer("head_drelu"), DReLU)
    images = np.random.default_rng(0).integers(
        0, 256, (6, *model.input_shape[1:]), dtype=np.uint8
    )
    np.save(tmp_path / "images.npy", images)
    served = json.loads(run_python(
        SERVE_SCRIPT.replace("SERVING", repr(str(out / "serving"))).replace(
            "IMAGES", repr(str(tmp_path / "images.npy"))
        ),
        env={"KERAS_BACKEND": "tensorflow"}, cwd=tmp_path,
    ).splitlines()[-1])
    assert served["loaded"] == []
    logits = model.predict(images.astype("float32") / 255.0, verbose=0)
    np.testing.assert_array_equal(served["class_id"], logits.argmax(axis=1))
    np.testing.assert_allclose(served["sums"], 1.0, rtol=1e-5)
    assert served["empty"] == [0]


NO_TENSORFLOW_SCRIPT = blocking("tensorflow", "tensorflow_datasets") + """
import json
import keras
from keras_drelu.training import get_strategy
from retrofit.export import ExportError, export_for_serving

model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                          keras.layers.Dense(3)])
errors = {}
try:
    export_for_serving(model, "served")
except ExportError as error:
    errors["export"] = str(error)
try:
    get_strategy("mirrored")
except ValueError as error:
    errors["strategy"] = str(error)
print(json.dumps(errors))
"""


def test_without_tensorflow_export_and_strategies_fail_in_one_line(
    tmp_path, run_python
):
    errors = json.loads(run_python(
        NO_TENSORFLOW_SCRIPT, env={"KERAS_BACKEND": "jax"}, cwd=tmp_path
    ).splitlines()[-1])
    assert errors["export"].startswith(
        "exporting a SavedModel for serving needs TensorFlow"
    )
    assert "\n" not in errors["export"]
    assert not (tmp_path / "served").exists()
    assert "on the TensorFlow backend, not on the 'jax' backend" in (
        errors["strategy"]
    )
