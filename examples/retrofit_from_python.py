"""Retrofit a backbone from Python: build, train, evaluate.

The steps of the `retrofit` command, one call each, on scikit-learn's
bundled digits: a backbone gets a D-ReLU head (`build_retrofit_model`),
trains with the recipe picked for it (`keras_drelu.training.train`), and is
evaluated straight from the test `tf.data.Dataset` (`evaluate_robustness`).
The backbone is a small CNN built here (any image model without its top
will do, as keras-hub's backbones do), or with `--backbone` a
`keras.applications` name such as MobileNetV2, with random weights. Offline,
seconds on a CPU with the small CNN, minutes with MobileNetV2.

    python examples/retrofit_from_python.py [--backbone MobileNetV2] [--epochs 10]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from keras_drelu import max_values  # noqa: E402
from keras_drelu.evaluation import evaluate_robustness  # noqa: E402
from keras_drelu.training import train  # noqa: E402
from retrofit import data  # noqa: E402
from retrofit.placements import build_retrofit_model  # noqa: E402

# Budgets cut for a CPU; drop `overrides` for the suite's full ones.
QUICK = {
    "APGD-CE": {"steps": 10},
    "APGD-T": {"steps": 10, "n_target_classes": 3},
    "Square": {"n_queries": 100},
}


def small_cnn():
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(64, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(128, 3, strides=2, activation="relu"),
    ], name="small_cnn")  # a feature map: the retrofit pools it


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", help="a keras.applications name")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--eval-images", type=int, default=100)
    args = parser.parse_args(argv)

    splits = data.digits(image_size=32, batch_size=64)
    keras.utils.set_random_seed(0)
    model = build_retrofit_model(
        args.backbone or small_cnn(), splits.info.image_shape,
        splits.info.num_classes, placement="head", activation="drelu",
        units=64, lam=1e-3, weights=None,
    )
    result = train(
        model, splits.train, splits.validation, recipe="auto",
        epochs=args.epochs, seed=0, verbose=0,
    )
    caps = max_values(result.model)["head_drelu"]
    print(f"{model.name}: recipe {result.recipe!r}, {len(result.epochs)} "
          f"epochs, caps from 100 to {caps.mean():.1f}")

    report = evaluate_robustness(
        result.model, splits.test, eps=8 / 255, n_examples=args.eval_images,
        overrides=QUICK, verbose=False,
    )
    print(f"clean accuracy {report.clean_accuracy:.3f}, worst case under "
          f"the {report.suite} suite {report.worst_case_accuracy:.3f}")
    print("flags:", [flag.code for flag in report.flags] or "none")
    return result, report


if __name__ == "__main__":
    main()
