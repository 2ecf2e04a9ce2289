"""Smoke test of keras-drelu on the lowest versions pyproject.toml allows.

CI installs the project with `.ci/lower_bounds.py`'s constraints and runs
this: TRADES training with a D-ReLU cap, calibration, the default
evaluation suite, a retrofit model and its SavedModel export.
"""
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

import keras_drelu
from keras_drelu import DReLU, calibrate_caps, max_values
from keras_drelu.evaluation import evaluate_robustness
from keras_drelu.training import train
from retrofit.export import export_for_serving
from retrofit.placements import build_retrofit_model

print("keras", keras.__version__, "tensorflow", tf.__version__,
      "numpy", np.__version__)
rng = np.random.default_rng(0)
x = rng.uniform(size=(256, 8, 8, 1)).astype("float32")
y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("int64")
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)


def build():
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(),
        keras.layers.Dense(16), DReLU(max_value_regularizer=1e-3),
        keras.layers.Dense(2),
    ])


result = train(build, data, data, recipe="trades", epochs=2, eps=0.05,
               attack_steps=2, seed=0, verbose=0)
calibrate_caps(result.model, x[:64])
report = evaluate_robustness(
    result.model, x[:64], y[:64], eps=0.05, verbose=False,
    overrides={"APGD-CE": {"steps": 3}, "APGD-T": {"steps": 3},
               "FAB-T": {"steps": 3}, "Square": {"n_queries": 20}},
)
print("suite", report.suite, "worst case", report.worst_case_accuracy)
model = build_retrofit_model("MobileNetV2", (32, 32, 1), 3, units=8,
                             weights=None)
path = export_for_serving(model, os.path.join(tempfile.mkdtemp(), "served"))
serve = tf.saved_model.load(path).signatures["serving_default"]
print("served", serve(images=tf.zeros((2, 32, 32, 1), tf.uint8))["class_id"].shape)
print("caps", {k: v.shape for k, v in max_values(result.model).items()})
print("smoke test passed on keras_drelu", keras_drelu.__version__)
