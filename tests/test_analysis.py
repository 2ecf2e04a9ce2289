"""Tests for keras_drelu.analysis against numpy on hand-set tiny models."""

import keras
import numpy as np
import pytest

from keras_drelu import SReLU
from keras_drelu.analysis import PerturbationGrowth
from keras_drelu.analysis import SensitivityMaps
from keras_drelu.analysis import logits_model
from keras_drelu.analysis import perturbation_growth
from keras_drelu.analysis import plot_perturbation_growth
from keras_drelu.analysis import plot_sensitivity_maps
from keras_drelu.analysis import sensitivity_map
from keras_drelu.analysis import zero_gradient_distance

RNG = np.random.default_rng(0)
W1 = RNG.normal(size=(3, 4)).astype("float32")
B1 = RNG.normal(size=4).astype("float32") * 0.1
W2 = RNG.normal(size=(4, 2)).astype("float32")
B2 = RNG.normal(size=2).astype("float32") * 0.1


@pytest.fixture(autouse=True)
def _agg_backend():
    import matplotlib

    matplotlib.use("Agg")


def two_layer_net(final_activation=None):
    """3 -> Dense(4, relu) -> Dense(2): weights W1, B1, W2, B2."""
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, activation="relu", name="hidden"),
            keras.layers.Dense(2, activation=final_activation, name="out"),
        ]
    )
    model.layers[0].set_weights([W1, B1])
    model.layers[1].set_weights([W2, B2])
    return model


def numpy_two_layer(x):
    hidden = np.maximum(0.0, x @ W1 + B1)
    return hidden, hidden @ W2 + B2


def capped_1d_net(cap=0.05, dim=1):
    """z = sum(x) - 0.5, h = SReLU(cap)(z), logits [h, -h].

    The input gradient is nonzero only where 0 < sum(x) - 0.5 < cap.
    """
    return keras.Sequential(
        [
            keras.Input((dim,)),
            keras.layers.Dense(
                1,
                kernel_initializer="ones",
                bias_initializer=keras.initializers.Constant(-0.5),
            ),
            SReLU(cap),
            keras.layers.Dense(
                2,
                use_bias=False,
                kernel_initializer=keras.initializers.Constant([[1.0, -1.0]]),
            ),
        ]
    )


class TestPerturbationGrowth:
    def test_matches_numpy(self):
        x = RNG.uniform(size=(5, 3)).astype("float32")
        x_adv = x + RNG.uniform(-0.1, 0.1, size=(5, 3)).astype("float32")
        growth = perturbation_growth(two_layer_net(), x, x_adv, batch_size=2)
        clean, adversarial = numpy_two_layer(x), numpy_two_layer(x_adv)
        for i, (h, h_adv) in enumerate(zip(clean, adversarial)):
            diff = h_adv - h
            np.testing.assert_allclose(
                growth.linf[i], np.abs(diff).max(1).mean(), rtol=1e-5
            )
            np.testing.assert_allclose(
                growth.l2[i], np.linalg.norm(diff, axis=1).mean(), rtol=1e-5
            )
        assert growth.layer_names == ("hidden", "out")
        assert growth.num_examples == 5

    def test_single_layer(self):
        x = RNG.uniform(size=(4, 3)).astype("float32")
        full = perturbation_growth(two_layer_net(), x, x + 0.1)
        hidden_only = perturbation_growth(
            two_layer_net(), x, x + 0.1, layers=["hidden"]
        )
        assert hidden_only.layer_names == ("hidden",)
        np.testing.assert_allclose(hidden_only.linf, full.linf[:1])
        np.testing.assert_allclose(hidden_only.l2, full.l2[:1])

    def test_cap_bounds_the_capped_layer(self):
        inputs = keras.Input((3,))
        hidden = keras.layers.Dense(8, name="dense")(inputs)
        capped = SReLU(0.01, name="capped")(hidden)
        nested = keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(2)], name="head"
        )
        model = keras.Model(inputs, nested(capped))
        x = RNG.uniform(size=(6, 3)).astype("float32")
        growth = perturbation_growth(
            model, x, x + 0.5, layers=["dense", "capped", nested]
        )
        assert growth.layer_names == ("dense", "capped", "head")
        # A capped unit moves at most by its cap, whatever the input does.
        assert growth.linf[1] <= 0.01 + 1e-7
        assert growth.linf[0] > 0.01

    def test_plot(self):
        growth = PerturbationGrowth(
            ("a", "b", "c"), np.array([0.1, 0.2, 0.4]), np.ones(3), 4
        )
        ax = plot_perturbation_growth({"ReLU": growth, "cap 0.1": growth})
        assert len(ax.lines) == 2
        np.testing.assert_allclose(ax.lines[0].get_ydata(), growth.linf)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
        assert ax.get_legend() is not None

    def test_plot_bad_input(self):
        one = PerturbationGrowth(("a",), np.ones(1), np.ones(1), 1)
        two = PerturbationGrowth(("a", "b"), np.ones(2), np.ones(2), 1)
        with pytest.raises(ValueError, match="norm='l1'"):
            plot_perturbation_growth(one, norm="l1")
        with pytest.raises(ValueError, match="same number of layers"):
            plot_perturbation_growth({"x": one, "y": two})
        with pytest.raises(ValueError, match="at least one"):
            plot_perturbation_growth({})

    def test_bad_input(self):
        model = two_layer_net()
        with pytest.raises(ValueError, match=r"x.shape=\(2, 3\), x_adv.shape"):
            perturbation_growth(model, np.zeros((2, 3)), np.zeros((3, 3)))
        with pytest.raises(ValueError, match="'nope' is not a top-level"):
            perturbation_growth(
                model, np.zeros((2, 3)), np.zeros((2, 3)), layers=["nope"]
            )
        with pytest.raises(ValueError, match="batch_size=0"):
            perturbation_growth(
                model, np.zeros((2, 3)), np.zeros((2, 3)), batch_size=0
            )
        unbuilt = keras.Sequential([keras.layers.Dense(2)])
        with pytest.raises(ValueError, match="no defined input"):
            perturbation_growth(unbuilt, np.zeros((2, 3)), np.zeros((2, 3)))

        class Subclassed(keras.Model):
            def call(self, x):
                return x

        with pytest.raises(ValueError, match="Subclassed"):
            perturbation_growth(
                Subclassed(), np.zeros((2, 3)), np.zeros((2, 3))
            )


class TestLogitsModel:
    @pytest.mark.parametrize("ending", ["dense", "softmax_layer", "activation"])
    def test_strips_softmax(self, ending):
        if ending == "dense":
            model = two_layer_net("softmax")
        else:
            last = (
                keras.layers.Softmax()
                if ending == "softmax_layer"
                else keras.layers.Activation("softmax")
            )
            model = keras.Sequential(
                [keras.Input((3,))] + two_layer_net().layers + [last]
            )
        x = RNG.uniform(size=(4, 3)).astype("float32")
        logits = logits_model(model)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(logits(x)),
            numpy_two_layer(x)[1],
            rtol=1e-5,
            atol=1e-6,
        )

    def test_rejects_two_outputs(self):
        inputs = keras.Input((3,))
        outputs = [keras.layers.Dense(2)(inputs) for _ in range(2)]
        model = keras.Model(inputs, outputs)
        with pytest.raises(ValueError, match="with 2 outputs"):
            logits_model(model)

    def test_keeps_logits_model(self):
        model = two_layer_net()
        assert logits_model(model) is model


class TestZeroGradientDistance:
    # Example 0 sits where the unit is dead (zero gradient at once);
    # example 1 steps down 0.525 -> 0.505 -> 0.485 and dies after 2 steps;
    # example 2 climbs 0.505 -> 0.525 -> 0.545, still below the cap at 0.55.
    X = np.array([[0.2], [0.525], [0.505]], dtype="float32")
    Y = np.array([0, 0, 1])

    def test_finds_zero_gradient_on_capped_model(self):
        result = zero_gradient_distance(
            capped_1d_net(), self.X, self.Y, step_size=0.02, max_steps=2
        )
        assert result.found_share == pytest.approx(2 / 3)
        assert result.steps.tolist() == [0, 2, -1]
        np.testing.assert_allclose(result.distances[:2], [0.0, 0.04], atol=1e-6)
        assert np.isnan(result.distances[2])
        assert result.mean_distance == pytest.approx(0.02, abs=1e-6)

    def test_distance_is_euclidean(self):
        # z = 0.025; one signed step of 0.02 on both inputs lowers z by 0.04.
        result = zero_gradient_distance(
            capped_1d_net(dim=2), np.array([[0.2625, 0.2625]]), np.array([0]),
            step_size=0.02, max_steps=3,
        )
        assert result.steps.tolist() == [1]
        assert result.mean_distance == pytest.approx(
            0.02 * np.sqrt(2), abs=1e-6
        )

    def test_more_steps_find_the_cap(self):
        result = zero_gradient_distance(
            capped_1d_net(), self.X, self.Y, step_size=0.02, max_steps=10,
            norm="l2", batch_size=2,
        )
        assert result.found_share == 1.0
        assert result.steps.tolist() == [0, 2, 3]
        np.testing.assert_allclose(
            result.distances, [0.0, 0.04, 0.06], atol=1e-6
        )

    def test_eps_ball_stops_the_ascent(self):
        result = zero_gradient_distance(
            capped_1d_net(), self.X, self.Y, step_size=0.02, max_steps=10,
            eps=0.01,
        )
        assert result.steps.tolist() == [0, -1, -1]
        assert result.found_share == pytest.approx(1 / 3)

    def test_softmax_model_gives_the_same_result(self):
        model = keras.Sequential(
            [keras.Input((1,))] + capped_1d_net().layers
            + [keras.layers.Softmax()]
        )
        result = zero_gradient_distance(
            model, self.X, self.Y, step_size=0.02, max_steps=2
        )
        assert result.steps.tolist() == [0, 2, -1]

    def test_uncapped_linear_model_never_finds_one(self):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        result = zero_gradient_distance(
            model, RNG.uniform(size=(4, 3)), np.zeros(4, int),
            step_size=0.05, max_steps=3,
        )
        assert result.found_share == 0.0
        assert np.isnan(result.mean_distance)
        assert (result.steps == -1).all()

    def test_bad_input(self):
        model = capped_1d_net()
        kwargs = dict(step_size=0.1, max_steps=2)
        with pytest.raises(ValueError, match=r"y.shape=\(2,\)"):
            zero_gradient_distance(model, self.X, np.zeros(2, int), **kwargs)
        with pytest.raises(ValueError, match="y.dtype=float"):
            zero_gradient_distance(model, self.X, np.zeros(3), **kwargs)
        with pytest.raises(ValueError, match="step_size=0"):
            zero_gradient_distance(model, self.X, self.Y, step_size=0,
                                   max_steps=2)
        with pytest.raises(ValueError, match="max_steps=-1"):
            zero_gradient_distance(model, self.X, self.Y, step_size=0.1,
                                   max_steps=-1)
        with pytest.raises(ValueError, match="eps=-0.1"):
            zero_gradient_distance(model, self.X, self.Y, eps=-0.1, **kwargs)
        with pytest.raises(ValueError, match="norm='l1'"):
            zero_gradient_distance(model, self.X, self.Y, norm="l1", **kwargs)
        with pytest.raises(ValueError, match=r"clip_values=\(1, 0\)"):
            zero_gradient_distance(model, self.X, self.Y, clip_values=(1, 0),
                                   **kwargs)

    def test_rejects_hidden_probabilities(self):
        model = keras.Sequential(
            [keras.Input((1,))] + capped_1d_net().layers
            + [keras.layers.Lambda(lambda t: keras.ops.softmax(t))]
        )
        with pytest.raises(ValueError, match="seems to output probabilities"):
            zero_gradient_distance(model, self.X, self.Y, step_size=0.1,
                                   max_steps=1)


class TestSensitivityMap:
    def test_linear_model_uses_the_weight_matrix(self):
        weights = RNG.normal(size=(5, 3)).astype("float32")
        model = keras.Sequential(
            [keras.Input((5,)), keras.layers.Dense(3, use_bias=False)]
        )
        model.layers[0].set_weights([weights])
        x = RNG.uniform(size=(4, 5)).astype("float32")
        y = np.array([0, 1, 2, 1])
        result = sensitivity_map(model, x, y, batch_size=3)
        expected = np.stack(
            [
                np.maximum(0, weights[:, t] * (weights.sum(1) - weights[:, t]))
                for t in y
            ]
        )
        np.testing.assert_allclose(result.maps, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(result.sums, expected.sum(1), rtol=1e-5)

    def test_relu_net_matches_numpy_jacobian(self):
        x = RNG.uniform(size=(6, 3)).astype("float32")
        y = np.array([0, 1, 0, 1, 1, 0])
        # A final softmax is stripped: the map is taken on the logits.
        result = sensitivity_map(two_layer_net("softmax"), x, y)
        active = (x @ W1 + B1 > 0).astype("float32")
        for i, t in enumerate(y):
            jacobian = (W1 * active[i]) @ W2  # dZ/dx, shape (3, 2)
            expected = np.maximum(0, jacobian[:, t] * jacobian[:, 1 - t])
            np.testing.assert_allclose(result.maps[i], expected, rtol=1e-5,
                                       atol=1e-7)

    def test_bad_input(self):
        model = two_layer_net()
        x = np.zeros((2, 3))
        with pytest.raises(ValueError, match=r"in \[0, 2\).*\[0, 5\]"):
            sensitivity_map(model, x, np.array([0, 5]))
        with pytest.raises(ValueError, match=r"y.shape=\(3,\)"):
            sensitivity_map(model, x, np.array([0, 1, 1]))
        with pytest.raises(ValueError, match=r"x.shape=\(3,\)"):
            sensitivity_map(model, np.zeros(3), np.array([0, 1, 1]))
        hidden_softmax = keras.Sequential(
            [keras.Input((3,))]
            + model.layers
            + [keras.layers.Lambda(lambda t: keras.ops.softmax(t))]
        )
        with pytest.raises(ValueError, match="seems to output probabilities"):
            sensitivity_map(hidden_softmax, x, np.array([0, 1]))


class TestPlotSensitivityMaps:
    def test_grid_png_and_shared_scale(self, tmp_path):
        low = SensitivityMaps(np.full((3, 4), 0.5), np.full(3, 2.0))
        high = SensitivityMaps(
            np.arange(12.0).reshape(3, 4), np.array([6.0, 22, 38])
        )
        path = tmp_path / "smap.png"
        figure = plot_sensitivity_maps(
            {"cap 0.1": low, "ReLU": high}, path, image_shape=(2, 2),
            max_images=2,
        )
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        panels = figure.axes[:4]
        assert [ax.get_title() for ax in panels] == [
            "cap 0.1\nsum 2", "cap 0.1\nsum 2", "ReLU\nsum 6", "ReLU\nsum 22",
        ]
        # One colour scale for every panel: the largest shown value, 7.
        assert {ax.images[0].get_clim() for ax in panels} == {(0.0, 7.0)}

    def test_colour_images_sum_channels(self):
        maps = SensitivityMaps(np.ones((1, 2, 2, 3)), np.array([12.0]))
        figure = plot_sensitivity_maps(maps)
        np.testing.assert_allclose(figure.axes[0].images[0].get_array(), 3.0)

    def test_bad_input(self):
        flat = SensitivityMaps(np.ones((1, 5)), np.array([5.0]))
        with pytest.raises(ValueError, match="pass `image_shape`"):
            plot_sensitivity_maps(flat)
        with pytest.raises(ValueError, match=r"image_shape=\(2, 2\)"):
            plot_sensitivity_maps(flat, image_shape=(2, 2))
        with pytest.raises(ValueError, match="max_images=0"):
            plot_sensitivity_maps(flat, image_shape=(5, 1), max_images=0)
