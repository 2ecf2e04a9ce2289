"""A self-contained SavedModel for serving a retrofitted classifier."""

import os

import keras
import tensorflow as tf

from keras_drelu.arguments import check_choice

INPUT_NAME = "images"


def export_for_serving(model, path, *, outputs="logits"):
    """Writes `model` as a SavedModel that takes uint8 images.

    The `serving_default` signature takes a batch of uint8 images of the
    model's input shape under the name `"images"`, scales them to `[0, 1]`
    and returns `probabilities` (float32, one row per image) and `class_id`
    (int64). A batch of images of another shape is refused with an error
    that names both shapes (a signature alone does not check the shape of
    what it is given); an empty batch gives empty outputs. The SavedModel
    needs only TensorFlow: it loads with `tf.saved_model.load` and runs
    with `saved_model_cli run` in a process without this project.

    Example:

    >>> import tempfile, numpy as np
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
    """
    check_choice("outputs", outputs, ("logits", "probabilities"))
    image_shape = tuple(model.input_shape[1:])
    if None in image_shape:
        raise ValueError(
            "The model needs a fixed input image shape to export uint8 "
            f"images of it. Received: input_shape={model.input_shape}"
        )

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
    path = os.fspath(path)
    archive.write_out(path, verbose=False)
    return path
