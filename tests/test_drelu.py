import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_drelu import DReLU
from keras_drelu import MaxValueRegularizer


def numpy_drelu(x, caps):
    return np.maximum(0.0, np.minimum(x, caps))


def built_layer(input_shape, caps=None, **kwargs):
    layer = DReLU(**kwargs)
    layer.build(input_shape)
    if caps is not None:
        layer.max_value.assign(caps)
    return layer


class TestBuild:
    def test_dense_input_has_one_cap_per_unit(self):
        layer = built_layer((None, 7))
        assert tuple(layer.max_value.shape) == (7,)
        np.testing.assert_array_equal(layer.max_value.numpy(), 100.0)
        assert len(layer.trainable_weights) == 1
        assert len(layer.non_trainable_weights) == 0

    def test_conv_input_has_one_cap_per_channel(self):
        layer = built_layer((None, 5, 6, 3), initial_max_value=2.5)
        assert tuple(layer.max_value.shape) == (3,)
        np.testing.assert_array_equal(layer.max_value.numpy(), 2.5)

    def test_shared_axes_follow_prelu(self):
        # PReLU convention: the cap has the input's shape, shared axes set to 1.
        assert tuple(
            built_layer((None, 5, 6, 3), shared_axes=[1, 2]).max_value.shape
        ) == (1, 1, 3)
        assert tuple(
            built_layer((None, 5, 6, 3), shared_axes=[1, 2, 3]).max_value.shape
        ) == (1, 1, 1)
        assert tuple(
            built_layer((None, 5, 6, 3), shared_axes=3).max_value.shape
        ) == (5, 6, 1)
        assert tuple(
            built_layer((None, 5, 6, 3), shared_axes=[-1]).max_value.shape
        ) == (5, 6, 1)

    def test_frozen_caps_are_non_trainable(self):
        layer = built_layer((None, 4), trainable_max_value=False)
        assert layer.trainable_weights == []
        assert len(layer.non_trainable_weights) == 1

    def test_output_shape_and_dtype(self):
        layer = DReLU()
        out = layer(np.zeros((2, 3, 4), "float32"))
        assert tuple(out.shape) == (2, 3, 4)
        assert out.dtype == tf.float32
        symbolic = layer.compute_output_spec(keras.KerasTensor((None, 3, 4)))
        assert tuple(symbolic.shape) == (None, 3, 4)

    def test_float64_layer(self):
        layer = DReLU(initial_max_value=1.0, dtype="float64")
        out = layer(np.array([[3.0, 0.5]]))
        assert out.dtype == tf.float64
        np.testing.assert_array_equal(out.numpy(), [[1.0, 0.5]])


class TestForward:
    @pytest.mark.parametrize(
        "input_shape, shared_axes, cap_shape",
        [
            ((4, 6), None, (6,)),
            ((4, 5, 5, 3), None, (3,)),
            ((4, 5, 5, 3), [1, 2], (1, 1, 3)),
            ((4, 5, 5, 3), [3], (5, 5, 1)),
            ((4, 8, 2), [2], (8, 1)),
        ],
    )
    def test_matches_numpy(self, input_shape, shared_axes, cap_shape):
        rng = np.random.default_rng(0)
        x = rng.normal(scale=2.0, size=input_shape).astype("float32")
        caps = rng.uniform(0.1, 2.0, size=cap_shape).astype("float32")
        layer = built_layer((None,) + input_shape[1:], caps, shared_axes=shared_axes)
        np.testing.assert_array_equal(layer(x).numpy(), numpy_drelu(x, caps))

    def test_caps_differ_per_channel(self):
        x = np.full((1, 2, 2, 3), 5.0, "float32")
        layer = built_layer((None, 2, 2, 3), np.array([1.0, 2.0, 3.0]))
        np.testing.assert_array_equal(layer(x).numpy()[0, 0, 0], [1.0, 2.0, 3.0])

    def test_negative_cap_without_constraint_outputs_zero(self):
        layer = built_layer((None, 2), np.array([-1.0, 1.0]), max_value_constraint=None)
        np.testing.assert_array_equal(
            layer(np.array([[3.0, 3.0]], "float32")).numpy(), [[0.0, 1.0]]
        )


class TestGradients:
    x = np.array([[-1.0, 0.5, 2.0, 3.0]], "float32")
    caps = np.array([1.0, 1.0, 1.0, 4.0], "float32")

    def grads(self, gradient_mode):
        layer = built_layer((None, 4), self.caps, gradient_mode=gradient_mode)
        x = tf.constant(self.x)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.constant([[1.0, 2.0, 3.0, 4.0]]))
        return y, tape.gradient(loss, x), tape.gradient(loss, layer.max_value)

    def test_exact_gradients_by_hand(self):
        y, dx, dm = self.grads("exact")
        np.testing.assert_array_equal(y.numpy(), [[0.0, 0.5, 1.0, 3.0]])
        # d/dx is 1 only on the linear piece 0 < x < m.
        np.testing.assert_array_equal(dx.numpy(), [[0.0, 2.0, 0.0, 4.0]])
        # d/dm is 1 only where x > m (the third unit).
        np.testing.assert_array_equal(dm.numpy(), [0.0, 0.0, 3.0, 0.0])

    def test_cap_at_zero_still_gets_gradient(self):
        # A cap pushed to 0 by the penalty must be able to grow back.
        layer = built_layer((None, 2), np.array([0.0, 0.0]))
        x = tf.constant([[2.0, -1.0]])
        with tf.GradientTape() as tape:
            y = layer(x)
        np.testing.assert_array_equal(y.numpy(), [[0.0, 0.0]])
        np.testing.assert_array_equal(
            tape.gradient(y, layer.max_value).numpy(), [1.0, 0.0]
        )

    def test_bpda_forward_is_unchanged(self):
        y_exact, _, _ = self.grads("exact")
        y_bpda, _, _ = self.grads("bpda")
        np.testing.assert_array_equal(y_bpda.numpy(), y_exact.numpy())

    def test_bpda_gradient_is_relu_gradient(self):
        _, dx, _ = self.grads("bpda")
        x = tf.constant(self.x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.nn.relu(x) * tf.constant([[1.0, 2.0, 3.0, 4.0]]))
        np.testing.assert_array_equal(dx.numpy(), tape.gradient(loss, x).numpy())
        np.testing.assert_array_equal(dx.numpy(), [[0.0, 2.0, 3.0, 4.0]])

    def test_bpda_forward_is_exact_for_huge_inputs(self):
        # `relu + (capped - relu)` would round here; the layer must not.
        layer = built_layer((None, 1), np.array([100.0]), gradient_mode="bpda")
        x = np.array([[1e8], [123456.7], [99.99]], "float32")
        np.testing.assert_array_equal(
            layer(x).numpy(), np.minimum(x, 100.0).astype("float32")
        )


class TestRegularizer:
    def test_loss_value_in_model_losses(self):
        model = keras.Sequential(
            [
                keras.Input((3,)),
                keras.layers.Dense(4),
                DReLU(initial_max_value=2.0, max_value_regularizer=0.25),
            ]
        )
        assert len(model.losses) == 1
        np.testing.assert_allclose(float(model.losses[0]), 0.25 * 4 * 2.0**2)

    def test_no_regularizer_no_loss(self):
        model = keras.Sequential([keras.Input((3,)), DReLU()])
        assert model.losses == []

    @pytest.mark.parametrize(
        "spec",
        [
            MaxValueRegularizer(0.5),
            {"class_name": "MaxValueRegularizer", "config": {"lam": 0.5},
             "module": None, "registered_name": "keras_drelu>MaxValueRegularizer"},
            0.5,
        ],
        ids=["object", "config", "float"],
    )
    def test_regularizer_forms(self, spec):
        layer = built_layer((None, 2), np.array([1.0, 3.0]), max_value_regularizer=spec)
        assert isinstance(layer.max_value_regularizer, MaxValueRegularizer)
        np.testing.assert_allclose(float(layer.losses[0]), 0.5 * 10.0)

    def test_keras_regularizer_name(self):
        layer = DReLU(max_value_regularizer="l2")
        assert isinstance(layer.max_value_regularizer, keras.regularizers.L2)

    def test_large_lam_shrinks_caps(self):
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 4)).astype("float32")
        y = (x[:, 0] > 0).astype("int32")

        def train(lam):
            keras.utils.set_random_seed(0)
            model = keras.Sequential(
                [
                    keras.Input((4,)),
                    keras.layers.Dense(8),
                    DReLU(initial_max_value=5.0, max_value_regularizer=lam),
                    keras.layers.Dense(2),
                ]
            )
            model.compile(
                keras.optimizers.Adam(0.05),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            model.fit(x, y, epochs=20, batch_size=16, verbose=0)
            return model.layers[1].max_value.numpy()

        free, penalised = train(0.0), train(10.0)
        assert free.min() > 4.0
        assert penalised.max() < 2.0
        assert penalised.min() >= 0.0  # non-negative by default


class TestPrecisionAndDistribution:
    @pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
    def test_mixed_precision(self, policy):
        keras.config.set_dtype_policy(policy)
        try:
            model = keras.Sequential(
                [
                    keras.Input((4,)),
                    keras.layers.Dense(6),
                    DReLU(initial_max_value=0.5, max_value_regularizer=1e-3),
                    keras.layers.Dense(2, dtype="float32"),
                ]
            )
            layer = model.layers[1]
            assert layer.max_value.dtype == "float32"
            x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
            hidden = layer(model.layers[0](x))
            assert hidden.dtype == tf.as_dtype(policy.split("_")[1])
            assert float(tf.reduce_max(tf.cast(hidden, tf.float32))) <= 0.5
            model.compile("adam", "mse")
            history = model.fit(x, np.zeros((8, 2)), epochs=2, verbose=0)
            assert np.isfinite(history.history["loss"]).all()
        finally:
            keras.config.set_dtype_policy("float32")

    @pytest.mark.slow
    def test_mirrored_strategy_two_replicas(self, run_python):
        out = run_python(
            """
            import numpy as np, tensorflow as tf
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
            import keras
            from keras_drelu import DReLU
            strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
            with strategy.scope():
                model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
                    DReLU(initial_max_value=3.0, max_value_regularizer=1.0),
                    keras.layers.Dense(2)])
                model.compile(keras.optimizers.SGD(0.1),
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
            model.fit(x, (x[:, 0] > 0).astype("int32"), epochs=2, batch_size=16, verbose=0)
            caps = model.layers[1].max_value
            print(strategy.num_replicas_in_sync, type(caps.value).__name__,
                  float(tf.reduce_max(caps)))
            """
        )
        replicas, variable_type, max_cap = out.split()
        assert replicas == "2"
        assert "Mirrored" in variable_type
        assert float(max_cap) < 3.0


class TestValidation:
    @pytest.mark.parametrize(
        "kwargs, error, message",
        [
            ({"initial_max_value": -1.0}, ValueError, "initial_max_value=-1.0"),
            ({"initial_max_value": float("inf")}, ValueError, "initial_max_value=inf"),
            ({"initial_max_value": "big"}, TypeError, "initial_max_value='big'"),
            ({"initial_max_value": True}, TypeError, "initial_max_value=True"),
            ({"gradient_mode": "straight"}, ValueError, "gradient_mode='straight'"),
            ({"max_value_regularizer": -0.1}, ValueError, "lam=-0.1"),
            ({"max_value_regularizer": "nonsense"}, ValueError, "max_value_regularizer='nonsense'"),
            ({"max_value_constraint": "nonsense"}, ValueError, "nonsense"),
            ({"trainable_max_value": "yes"}, TypeError, "trainable_max_value='yes'"),
            ({"shared_axes": [0]}, ValueError, "batch axis"),
            ({"shared_axes": ["1"]}, TypeError, "shared_axes=['1']"),
        ],
    )
    def test_bad_arguments(self, kwargs, error, message):
        with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
            DReLU(**kwargs)

    def test_shared_axis_out_of_range(self):
        with pytest.raises(ValueError, match="entry 4 is out of range"):
            DReLU(shared_axes=[4]).build((None, 3, 3, 2))

    def test_rank_one_input(self):
        with pytest.raises(ValueError, match="rank >= 2"):
            DReLU().build((3,))

    def test_unknown_unit_count(self):
        with pytest.raises(ValueError, match="needs a known size for axis 2"):
            DReLU().build((None, 4, None))

    def test_wrong_unit_count_after_build(self):
        layer = built_layer((None, 3))
        with pytest.raises(ValueError, match="expected axis -1|incompatible"):
            layer(np.zeros((1, 4), "float32"))
