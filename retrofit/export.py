"""A self-contained SavedModel for serving a retrofitted classifier.

A SavedModel is TensorFlow's format, and its serving function a TensorFlow
graph. A classifier trained on another Keras backend (JAX) is saved and
exported by a TensorFlow process (`python -m retrofit.export MODEL PATH
OUTPUTS`), so that what serves is the same whichever backend trained it.
"""

import os
import pathlib
import subprocess
import sys
import tempfile

import keras

from keras_drelu.arguments import check_choice

INPUT_NAME = "images"


class ExportError(RuntimeError):
    """A SavedModel that could not be written."""


NEEDS_TENSORFLOW = (
    "exporting a SavedModel for serving needs TensorFlow (pip install "
    "tensorflow); saving the model as a .keras file does not"
)


def _tensorflow():
    try:
        import tensorflow as tf
    except ImportError:
        raise ExportError(NEEDS_TENSORFLOW) from None
    return tf


def _export_in_tensorflow(model, path, outputs):
    """`export_for_serving` run by a TensorFlow process on a saved `model`."""
    # Fails here, in one line, where TensorFlow is not installed.
    _tensorflow()
    root = str(pathlib.Path(__file__).resolve().parent.parent)
    environment = {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [root, os.environ.get("PYTHONPATH")])
        ),
    }
    with tempfile.TemporaryDirectory() as scratch:
        saved = os.path.join(scratch, "model.keras")
        model.save(saved)
        result = subprocess.run(
            [sys.executable, "-m", "retrofit.export", saved, path, outputs],
            env=environment, capture_output=True, text=True,
        )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no error message"]
        raise ExportError(
            f"the TensorFlow process exporting {path!r} failed: {lines[-1]}"
        )


def export_for_serving(model, path, *, outputs="logits"):
    """Writes `model` as a SavedModel that takes uint8 images.

    The `serving_default` signature takes a batch of uint8 images of the
    model's input shape under the name `"images"`, scales them to `[0, 1]`
    and returns `probabilities` (float32, one row per image) and `class_id`
    (int64). A batch of images of another shape is refused with an error
    that names both shapes (a signature alone does not check the shape of
    what it is given); an empty batch gives empty outputs. The SavedModel
    needs only TensorFlow: it loads with `tf.saved_model.load` and runs
    with `saved_model_cli run` in a process without this project. On a
    backend other than TensorFlow, a TensorFlow process writes it from
    `model` saved to a temporary `.keras` file.

    Example:

    >>> import tempfile, numpy as np, tensorflow as tf
    >>> model = keras.Sequential(
    ...     [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    >>> path = export_for_serving(model, tempfile.mkdtemp() + "/served")
    >>> serve = tf.saved_model.load(path).signatures["serving_default"]
    >>> result = serve(images=tf.zeros((2, 4, 4, 1), tf.uint8))
    >>> sorted(result), result["probabilities"].shape, result["class_id"].dtype
    (['class_id', 'probabilities'], TensorShape([2, 3]), tf.int64)
    >>> serve(images=tf.zeros((0, 4, 4, 1), tf.uint8))["class_id"].shape
    TensorShape([0])

    Args:
        model: A Keras classifier taking images in `[0, 1]`.
        path: Directory to write.
        outputs: `"logits"` or `"probabilities"`, what `model` outputs.
            Defaults to `"logits"`.

    Returns:
        `path`, as a string.

    Raises:
        ExportError: Without TensorFlow, or when the TensorFlow process
            exporting for another backend fails; the message is one line.
    """
    check_choice("outputs", outputs, ("logits", "probabilities"))
    image_shape = tuple(model.input_shape[1:])
    if None in image_shape:
        raise ValueError(
            "The model needs a fixed input image shape to export uint8 "
            f"images of it. Received: input_shape={model.input_shape}"
        )
    path = os.fspath(path)
    if keras.backend.backend() != "tensorflow":
        _export_in_tensorflow(model, path, outputs)
        return path
    tf = _tensorflow()

    num_classes = model.output_shape[-1]
    expected = "(batch, " + ", ".join(str(d) for d in image_shape) + ")"

    def predict(images):
        scores = model(tf.cast(images, tf.float32) / 255.0, training=False)
        scores = tf.cast(scores, tf.float32)
        return tf.nn.softmax(scores) if outputs == "logits" else scores

    def serve(images):
        shape = tf.shape(images)
        check = tf.debugging.assert_equal(
            shape[1:],
            tf.constant(image_shape, tf.int32),
            message=f"`{INPUT_NAME}` should be a batch of uint8 images of "
            f"shape {expected}; received a batch of shape",
            summarize=len(image_shape) + 1,
        )
        with tf.control_dependencies([check]):
            size = tf.identity(shape[0])
        probabilities = tf.cond(
            size > 0,
            lambda: predict(images),
            lambda: tf.zeros((0, num_classes), tf.float32),
        )
        return {
            "probabilities": probabilities,
            "class_id": tf.argmax(probabilities, axis=-1),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[
            tf.TensorSpec((None,) + image_shape, tf.uint8, name=INPUT_NAME)
        ],
    )
    archive.write_out(path, verbose=False)
    return path


def _main(model_path, path, outputs):
    _tensorflow()
    # The classes a retrofitted model holds, registered for loading.
    import keras_drelu  # noqa: F401
    import retrofit.backbones  # noqa: F401

    export_for_serving(
        keras.saving.load_model(model_path), path, outputs=outputs
    )


if __name__ == "__main__":
    try:
        _main(*sys.argv[1:])
    except ExportError as error:
        sys.exit(str(error))
