import json

import keras
import numpy as np
import pytest

from keras_drelu import DReLU
from keras_drelu import MaxValueRegularizer
from keras_drelu import SReLU


def trained_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(2, 3)(inputs)
    x = DReLU(initial_max_value=1.5, max_value_regularizer=1e-2, name="conv_cap")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(4)(x)
    x = SReLU(0.7, shared_axes=[1], gradient_mode="bpda")(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    model.compile(
        keras.optimizers.Adam(0.05),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(32, 6, 6, 1)).astype("float32")
    model.fit(x, rng.integers(0, 3, 32), epochs=3, verbose=0)
    return model, x


@pytest.mark.parametrize(
    "layer",
    [
        DReLU(),
        DReLU(
            initial_max_value=3.0,
            max_value_regularizer=MaxValueRegularizer(0.1),
            max_value_constraint=None,
            trainable_max_value=False,
            shared_axes=[1, 2],
            gradient_mode="bpda",
            name="custom",
        ),
        DReLU(max_value_regularizer=2.0, max_value_constraint="non_neg"),
    ],
)
def test_get_config_round_trip(layer):
    config = layer.get_config()
    json.dumps(keras.saving.serialize_keras_object(layer))
    restored = DReLU.from_config(config)
    assert restored.get_config() == config
    generic = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(generic) is DReLU
    assert generic.get_config() == config


def test_clone_model_keeps_layers_and_config():
    model, x = trained_model()
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    assert [type(l) for l in clone.layers] == [type(l) for l in model.layers]
    assert clone.get_layer("conv_cap").get_config() == model.get_layer(
        "conv_cap"
    ).get_config()
    np.testing.assert_array_equal(clone(x).numpy(), model(x).numpy())
    assert len(clone.losses) == 1


def test_keras_file_loads_in_fresh_process(tmp_path, run_python):
    model, x = trained_model()
    caps = keras.ops.convert_to_numpy(model.get_layer("conv_cap").max_value)
    assert not np.allclose(caps, 1.5)  # trained, not the initial value
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", x)
    run_python(
        f"""
        import numpy as np, keras
        import keras_drelu  # registers the layers
        model = keras.saving.load_model({str(tmp_path / 'model.keras')!r})
        np.save({str(tmp_path / 'y.npy')!r}, model(np.load({str(tmp_path / 'x.npy')!r})).numpy())
        layer = model.get_layer("conv_cap")
        print(type(layer).__name__, layer.max_value_regularizer)
        """
    )
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), model(x).numpy())


def test_exported_saved_model_serves_without_keras_drelu(tmp_path, run_python):
    model, x = trained_model()
    model.export(str(tmp_path / "served"), format="tf_saved_model", verbose=False)
    np.save(tmp_path / "x.npy", x)
    out = run_python(
        f"""
        import sys
        import numpy as np, tensorflow as tf
        served = tf.saved_model.load({str(tmp_path / 'served')!r})
        y = served.serve(tf.constant(np.load({str(tmp_path / 'x.npy')!r}))).numpy()
        np.save({str(tmp_path / 'y.npy')!r}, y)
        print("keras_drelu" in sys.modules)
        """,
        cwd=tmp_path,
    )
    assert out.strip() == "False"
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model(x).numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_jax_backend_layer_training_and_save_load(tmp_path, run_python):
    env = {"KERAS_BACKEND": "jax"}
    out = run_python(
        f"""
        import numpy as np, keras, jax, jax.numpy as jnp
        from keras_drelu import DReLU, with_gradient_mode
        assert keras.backend.backend() == "jax"
        x = np.array([[-1.0, 0.5, 2.0, 3.0]], "float32")
        layer = DReLU(initial_max_value=1.0)
        np.testing.assert_array_equal(np.asarray(layer(x)), [[0.0, 0.5, 1.0, 1.0]])
        bpda = DReLU(initial_max_value=1.0, gradient_mode="bpda")
        bpda.build(x.shape)
        grad_exact = jax.grad(lambda v: jnp.sum(layer(v)))(x)
        grad_bpda = jax.grad(lambda v: jnp.sum(bpda(v)))(x)
        np.testing.assert_array_equal(np.asarray(grad_exact), [[0, 1, 0, 0]])
        np.testing.assert_array_equal(np.asarray(grad_bpda), [[0, 1, 1, 1]])
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
            DReLU(initial_max_value=2.0, max_value_regularizer=1.0),
            keras.layers.Dense(2)])
        model.compile(keras.optimizers.Adam(0.05),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        data = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
        model.fit(data, (data[:, 0] > 0).astype("int32"), epochs=3, verbose=0)
        assert float(np.max(model.layers[1].max_value)) < 2.0
        np.testing.assert_array_equal(
            np.asarray(with_gradient_mode(model, "bpda")(data)), np.asarray(model(data)))
        model.save({str(tmp_path / 'jax.keras')!r})
        np.save({str(tmp_path / 'data.npy')!r}, data)
        np.save({str(tmp_path / 'expected.npy')!r}, np.asarray(model(data)))
        print("ok")
        """,
        env=env,
    )
    assert out.strip() == "ok"
    out = run_python(
        f"""
        import numpy as np, keras
        import keras_drelu
        model = keras.saving.load_model({str(tmp_path / 'jax.keras')!r})
        data = np.load({str(tmp_path / 'data.npy')!r})
        np.testing.assert_array_equal(np.asarray(model(data)),
                                      np.load({str(tmp_path / 'expected.npy')!r}))
        print(keras.backend.backend())
        """,
        env=env,
    )
    assert out.strip() == "jax"
