import keras
import numpy as np
import pytest
import tensorflow as tf

from keras.src import testing

from keras_drelu import DReLU
from keras_drelu import MaxValueRegularizer
from keras_drelu import straight_through


PARAMETERIZATIONS = ("log", "linear")


def numpy_drelu(x, caps):
    return np.maximum(0.0, np.minimum(x, caps))


def caps_of(layer):
    return keras.ops.convert_to_numpy(layer.max_value)


def built_layer(input_shape, caps=None, **kwargs):
    layer = DReLU(**kwargs)
    layer.build(input_shape)
    if caps is not None:
        layer.assign_max_value(caps)
    return layer


class TestBuild:
    @pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
    def test_dense_input_has_one_cap_per_unit(self, parameterization):
        layer = built_layer(
            (None, 7), max_value_parameterization=parameterization
        )
        assert tuple(layer.max_value.shape) == (7,)
        np.testing.assert_allclose(caps_of(layer), 100.0, rtol=1e-6)
        assert layer.trainable_weights == [layer.max_value_variable]
        assert len(layer.non_trainable_weights) == 0

    def test_linear_caps_are_the_variable_and_log_caps_its_exponential(self):
        linear = built_layer((None, 2), max_value_parameterization="linear")
        assert linear.max_value is linear.max_value_variable
        log = built_layer((None, 2), initial_max_value=2.0)
        stored = keras.ops.convert_to_numpy(log.max_value_variable)
        np.testing.assert_allclose(stored, np.log(2.0) / 10.0, rtol=1e-6)
        np.testing.assert_allclose(caps_of(log), 2.0, rtol=1e-6)

    def test_conv_input_has_one_cap_per_channel(self):
        layer = built_layer((None, 5, 6, 3), initial_max_value=2.5)
        assert tuple(layer.max_value.shape) == (3,)
        np.testing.assert_allclose(caps_of(layer), 2.5, rtol=1e-6)

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
    @pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
    def test_matches_numpy(
        self, input_shape, shared_axes, cap_shape, parameterization
    ):
        rng = np.random.default_rng(0)
        x = rng.normal(scale=2.0, size=input_shape).astype("float32")
        caps = rng.uniform(0.1, 2.0, size=cap_shape).astype("float32")
        layer = built_layer(
            (None,) + input_shape[1:], caps, shared_axes=shared_axes,
            max_value_parameterization=parameterization,
        )
        # The log form stores log(m) / 10: caps round-trip to float32 error.
        np.testing.assert_allclose(
            layer(x).numpy(), numpy_drelu(x, caps), rtol=1e-6, atol=0
        )

    def test_caps_differ_per_channel(self):
        x = np.full((1, 2, 2, 3), 5.0, "float32")
        layer = built_layer((None, 2, 2, 3), np.array([1.0, 2.0, 3.0]))
        np.testing.assert_allclose(
            layer(x).numpy()[0, 0, 0], [1.0, 2.0, 3.0], rtol=1e-6
        )

    def test_negative_cap_without_constraint_outputs_zero(self):
        layer = built_layer(
            (None, 2), np.array([-1.0, 1.0]), max_value_constraint=None,
            max_value_parameterization="linear",
        )
        np.testing.assert_array_equal(
            layer(np.array([[3.0, 3.0]], "float32")).numpy(), [[0.0, 1.0]]
        )

    def test_a_zero_cap_under_log_clips_to_the_smallest_cap(self):
        layer = built_layer((None, 2), np.array([0.0, 1.0]))
        out = layer(np.array([[3.0, 3.0]], "float32")).numpy()
        assert 0.0 < out[0, 0] <= 1.01e-6 and out[0, 1] == pytest.approx(1.0)


class TestGradients:
    x = np.array([[-1.0, 0.5, 2.0, 3.0]], "float32")
    caps = np.array([1.0, 1.0, 1.0, 4.0], "float32")

    def grads(self, gradient_mode, parameterization="linear"):
        layer = built_layer(
            (None, 4), self.caps, gradient_mode=gradient_mode,
            max_value_parameterization=parameterization,
        )
        x = tf.constant(self.x)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.constant([[1.0, 2.0, 3.0, 4.0]]))
        return (
            y, tape.gradient(loss, x),
            tape.gradient(loss, layer.max_value_variable),
        )

    def test_exact_gradients_by_hand(self):
        y, dx, dm = self.grads("exact")
        np.testing.assert_array_equal(y.numpy(), [[0.0, 0.5, 1.0, 3.0]])
        # d/dx is 1 only on the linear piece 0 < x < m.
        np.testing.assert_array_equal(dx.numpy(), [[0.0, 2.0, 0.0, 4.0]])
        # d/dm is 1 only where x > m (the third unit).
        np.testing.assert_array_equal(dm.numpy(), [0.0, 0.0, 3.0, 0.0])

    def test_log_caps_get_the_cap_gradient_over_rate_times_cap(self):
        # The stored log(m) / 10 gets the caps' gradient divided by 10 m
        # (the chain rule would multiply by 10 m), so SGD moves m as it
        # would move a cap stored as itself.
        self.caps = np.array([1.0, 1.0, 0.5, 4.0], "float32")
        y, dx, ds = self.grads("exact", "log")
        np.testing.assert_allclose(y.numpy(), [[0.0, 0.5, 0.5, 3.0]], rtol=1e-6)
        np.testing.assert_array_equal(dx.numpy(), [[0.0, 2.0, 0.0, 4.0]])
        np.testing.assert_allclose(
            ds.numpy(), [0.0, 0.0, 3.0 / (10.0 * 0.5), 0.0], rtol=1e-5
        )

    @pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
    def test_cap_at_zero_still_gets_gradient(self, parameterization):
        # A cap pushed to 0 by the penalty must be able to grow back.
        layer = built_layer(
            (None, 2), np.array([0.0, 0.0]),
            max_value_parameterization=parameterization,
        )
        x = tf.constant([[2.0, -1.0]])
        with tf.GradientTape() as tape:
            y = layer(x)
        np.testing.assert_allclose(y.numpy(), [[0.0, 0.0]], atol=1.01e-6)
        gradient = tape.gradient(y, layer.max_value_variable).numpy()
        assert gradient[0] > 0 and np.isfinite(gradient[0])
        assert gradient[1] == 0.0

    def test_bpda_forward_is_unchanged(self):
        y_exact, _, _ = self.grads("exact")
        y_bpda, _, _ = self.grads("bpda")
        np.testing.assert_array_equal(y_bpda.numpy(), y_exact.numpy())

    def test_bpda_keeps_the_caps_exact_gradient(self):
        _, _, exact = self.grads("exact")
        _, _, bpda = self.grads("bpda")
        np.testing.assert_array_equal(bpda.numpy(), exact.numpy())
        np.testing.assert_array_equal(bpda.numpy(), [0.0, 0.0, 3.0, 0.0])

    def test_straight_through_scope_is_bpda_on_the_same_layer(self):
        layer = built_layer((None, 4), self.caps)
        x = tf.constant(self.x)
        weights = tf.constant([[1.0, 2.0, 3.0, 4.0]])
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            exact = tf.reduce_sum(layer(x) * weights)
            with straight_through():
                through = tf.reduce_sum(layer(x) * weights)
                with straight_through(False):
                    inner_exact = tf.reduce_sum(layer(x) * weights)
        _, dx_exact, _ = self.grads("exact", "log")
        _, dx_bpda, _ = self.grads("bpda", "log")
        np.testing.assert_array_equal(tape.gradient(exact, x), dx_exact)
        np.testing.assert_array_equal(tape.gradient(through, x), dx_bpda)
        np.testing.assert_array_equal(tape.gradient(inner_exact, x), dx_exact)
        # The caps' gradient is the exact one in both views.
        np.testing.assert_array_equal(
            tape.gradient(through, layer.max_value_variable),
            tape.gradient(exact, layer.max_value_variable),
        )

    def test_straight_through_acts_when_a_function_is_traced(self):
        layer = built_layer((None, 4), self.caps)

        @tf.function
        def input_gradient(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                with straight_through():
                    through = tf.reduce_sum(layer(x))
                exact = tf.reduce_sum(layer(x))
            return tape.gradient([through, exact], x)

        # Straight-through: 1 where x > 0; exact: 1 where 0 < x < m.
        np.testing.assert_array_equal(
            input_gradient(tf.constant(self.x)), [[0.0, 2.0, 1.0, 2.0]]
        )

    def test_a_bpda_model_whose_only_weights_are_caps_trains(self):
        model = keras.Sequential([
            keras.Input((3,)),
            DReLU(initial_max_value=5.0, gradient_mode="bpda",
                  max_value_regularizer=1.0),
        ])
        model.compile(keras.optimizers.Adam(0.05), "mse")
        x = np.full((8, 3), 10.0, "float32")
        model.fit(x, np.zeros((8, 3)), epochs=5, verbose=0)
        assert caps_of(model.layers[0]).max() < 5.0

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
        layer = built_layer(
            (None, 1), np.array([100.0]), gradient_mode="bpda",
            max_value_parameterization="linear",
        )
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
        # The penalty acts on the caps, not on the stored log(m) / 10.
        np.testing.assert_allclose(float(layer.losses[0]), 0.5 * 10.0, rtol=1e-5)

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
            return caps_of(model.layers[1])

        free, penalised = train(0.0), train(10.0)
        assert free.min() > 4.0
        assert penalised.max() < 2.0
        assert penalised.min() >= 0.0  # non-negative by default


class TestMixedPrecision:
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

    # D-ReLU under a MirroredStrategy over two replicas, with its cap
    # penalty: tests/test_training.py
    # (test_mirrored_strategy_over_two_cpu_replicas).


class TestValidation:
    @pytest.mark.parametrize(
        "kwargs, error, message",
        [
            ({"initial_max_value": -1.0}, ValueError, "initial_max_value=-1.0"),
            ({"initial_max_value": float("inf")}, ValueError, "initial_max_value=inf"),
            ({"initial_max_value": "big"}, TypeError, "initial_max_value='big'"),
            ({"initial_max_value": True}, TypeError, "initial_max_value=True"),
            ({"gradient_mode": "straight"}, ValueError, "gradient_mode='straight'"),
            ({"max_value_parameterization": "sqrt"}, ValueError,
             "max_value_parameterization='sqrt'"),
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


class TestKerasLayerHarness(testing.TestCase):
    """Keras' own layer test: build, shapes, dtypes, weights, losses,
    training, mixed precision and a serialization round trip."""

    def test_drelu(self):
        for parameterization in PARAMETERIZATIONS:
            self.run_layer_test(
                DReLU,
                init_kwargs={
                    "initial_max_value": 1.5,
                    "max_value_regularizer": 1e-3,
                    "max_value_parameterization": parameterization,
                },
                input_shape=(2, 3, 4),
                expected_output_shape=(2, 3, 4),
                expected_num_trainable_weights=1,
                expected_num_non_trainable_weights=0,
                expected_num_losses=1,
                supports_masking=True,
            )

    def test_drelu_shared_axes(self):
        self.run_layer_test(
            DReLU,
            init_kwargs={"shared_axes": [1, 2], "gradient_mode": "bpda"},
            input_shape=(2, 3, 3, 5),
            expected_output_shape=(2, 3, 3, 5),
            expected_num_trainable_weights=1,
            expected_num_losses=0,
            supports_masking=True,
        )


class TestLearningSpeed:
    """Caps from the paper's 100 come down in a few hundred Adam steps
    stored as a logarithm, and barely move stored as themselves."""

    @staticmethod
    def final_caps(parameterization, optimizer, steps=600):
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 6)).astype("float32")
        y = (x[:, 0] + x[:, 1] > 0).astype("int32")
        cap = DReLU(max_value_regularizer=1.0,
                    max_value_parameterization=parameterization)
        model = keras.Sequential([
            keras.Input((6,)), keras.layers.Dense(16), cap, keras.layers.Dense(2)
        ])
        model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        # One epoch of `steps` batches: a step per batch.
        model.fit(np.tile(x, (steps, 1)), np.tile(y, steps), batch_size=64,
                  shuffle=False, verbose=0)
        return caps_of(cap)

    def test_adam_moves_log_caps_by_about_one_percent_a_step(self):
        log = self.final_caps("log", keras.optimizers.Adam(1e-3))
        linear = self.final_caps("linear", keras.optimizers.Adam(1e-3))
        # 600 steps of at most lr = 1e-3: a linear cap moves at most 0.6; a
        # log cap can shrink by up to exp(-6), 100 -> 0.25.
        assert linear.min() > 99.0
        assert np.median(log) < 1.0

    def test_sgd_steps_log_caps_as_it_steps_linear_caps(self):
        # SGD steps by the gradient itself: the log form passes on the caps'
        # gradient divided by 10 m, so one step changes m by the same
        # amount (to first order) as in the paper's linear form.
        log = self.final_caps("log", keras.optimizers.SGD(1e-4), steps=1)
        linear = self.final_caps("linear", keras.optimizers.SGD(1e-4), steps=1)
        assert np.all(linear < 100.0)
        # Within 1%: the log cap starts at float32's exp(log(100)), 100 +
        # 8e-6, which shifts the difference by 4e-4 of it.
        np.testing.assert_allclose(100.0 - log, 100.0 - linear, rtol=1e-2)


def test_a_file_saved_before_the_log_form_loads_with_identical_outputs(
    tmp_path,
):
    # Today's file format, rebuilt here: a config without
    # `max_value_parameterization` and the caps themselves as the weight.
    import json
    import zipfile

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((5,)), keras.layers.Dense(4),
        DReLU(initial_max_value=0.7, max_value_regularizer=1e-2,
              max_value_parameterization="linear", name="cap"),
        keras.layers.Dense(3),
    ])
    model.get_layer("cap").assign_max_value([0.1, 0.5, 0.0, 2.0])
    old = tmp_path / "old.keras"
    model.save(tmp_path / "new.keras")
    with zipfile.ZipFile(tmp_path / "new.keras") as source, zipfile.ZipFile(
        old, "w"
    ) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                layer = config["config"]["layers"][2]["config"]
                del layer["max_value_parameterization"]
                data = json.dumps(config).encode()
            target.writestr(item, data)
    loaded = keras.saving.load_model(old)
    cap = loaded.get_layer("cap")
    assert cap.max_value_parameterization == "log"
    x = np.random.default_rng(1).normal(size=(16, 5)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        caps_of(cap), [0.1, 0.5, 1e-6, 2.0], rtol=1e-5
    )
    # Saved again in the log form, it reloads bit for bit.
    loaded.save(tmp_path / "again.keras")
    again = keras.saving.load_model(tmp_path / "again.keras")
    np.testing.assert_array_equal(again(x), loaded(x))
