"""Export a retrofit model for serving, then serve it with TensorFlow alone.

A small image model (any `keras.Model` without its top) gets a D-ReLU head
(`build_retrofit_model`) and a few epochs on scikit-learn's bundled digits;
`export_for_serving` writes a SavedModel whose `serving_default` signature
takes uint8 images. The SavedModel is then loaded with
`tf.saved_model.load`, as a server would load it without this package, and
called on uint8 test images; its classes are checked against the Keras
model's. Offline, seconds on a CPU.

    python examples/export_and_serve.py [--out served/digits]
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_drelu.evaluation import examples_from_dataset  # noqa: E402
from keras_drelu.training import train  # noqa: E402
from retrofit import data  # noqa: E402
from retrofit.export import export_for_serving  # noqa: E402
from retrofit.placements import build_retrofit_model  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="SavedModel directory (default: a temporary one)")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)

    splits = data.digits(image_size=16, batch_size=64)
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.Conv2D(64, 3, strides=2, activation="relu"),
        keras.layers.Flatten(),  # features (batch, c) are taken as they are
    ], name="small_cnn")
    model = build_retrofit_model(
        backbone, splits.info.image_shape, splits.info.num_classes, units=32,
        lam=1e-3,
    )
    model = train(model, splits.train, splits.validation, epochs=args.epochs,
                  recipe="auto", verbose=0).model

    path = export_for_serving(
        model, args.out or os.path.join(tempfile.mkdtemp(), "served")
    )
    serve = tf.saved_model.load(path).signatures["serving_default"]

    images, labels = examples_from_dataset(splits.test, 64)
    uint8_images = np.round(images * 255).astype(np.uint8)
    served = serve(images=tf.constant(uint8_images))
    class_id = served["class_id"].numpy()
    expected = model.predict(uint8_images / 255.0, verbose=0).argmax(axis=1)
    print(f"SavedModel: {path}")
    print(f"outputs: {sorted(served)}, probabilities "
          f"{tuple(served['probabilities'].shape)}")
    print(f"served classes agree with Keras: {np.mean(class_id == expected):.3f}; "
          f"accuracy {np.mean(class_id == labels):.3f}")
    return path, class_id, expected, labels


if __name__ == "__main__":
    main()
