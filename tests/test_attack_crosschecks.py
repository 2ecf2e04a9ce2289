"""Our Square, APGD-DLR and APGD-T against IBM ART's, same models and images
(ART attacks a PyTorch copy of the Keras model, with the same weights).

`tests/test_attacks.py` cross-checks FGSM, PGD and APGD-CE the same way (on
ART's TensorFlow classifier).
Each pair must leave accuracies within 2 points of each other.
"""

import keras
import numpy as np
import pytest
from paper_mlp import paper_mlp

from keras_drelu.attacks import APGD
from keras_drelu.attacks import APGDT
from keras_drelu.attacks import Square
from keras_drelu.attacks import target_classes

EPS = 0.1
STEPS = 50


@pytest.fixture(scope="module")
def data(digits):
    x, y = digits
    return x[1400:1600], y[1400:1600]


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def torch_copy(model):
    """`model`, made of Flatten, Dense and ReLU layers, as a PyTorch module
    with the same weights."""
    import torch

    modules = []
    for layer in model.layers:
        if isinstance(layer, keras.Sequential):
            modules.append(torch_copy(layer))
        elif isinstance(layer, keras.layers.Flatten):
            modules.append(torch.nn.Flatten())
        elif isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            linear = torch.nn.Linear(*kernel.shape)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(kernel.T))
                linear.bias.copy_(torch.from_numpy(bias))
            modules.append(linear)
            activation = layer.get_config()["activation"]
            if activation == "relu":
                modules.append(torch.nn.ReLU())
            elif activation != "linear":
                raise ValueError(f"no PyTorch copy of activation={activation!r}")
        elif isinstance(layer, keras.layers.ReLU) and layer.get_config() == (
            keras.layers.ReLU(name=layer.name).get_config()
        ):
            modules.append(torch.nn.ReLU())
        else:
            raise ValueError(f"no PyTorch copy of {layer.name!r}")
    return torch.nn.Sequential(*modules).eval()


def art_classifier(model, input_shape):
    """ART's classifier of a PyTorch copy of `model`.

    ART computes the DLR loss row by row, in eager TensorFlow on its
    TensorFlow classifier: there the APGD-T check took 20 s and the
    APGD-DLR one 19 s, against 2.4 s and 10.5 s on its PyTorch classifier
    (this file alone, one after the other). The copy gives the same logits
    (checked here), so both attacks see one function.

    PyTorch runs on one thread here: with one of its threads per core, a
    core that the other pytest worker holds stalled each of its small ops
    (the Square check took 47 s beside a busy core, 11 s on one thread).
    """
    import torch
    from art.estimators.classification import PyTorchClassifier

    torch.set_num_threads(1)
    copy = torch_copy(model)
    x = np.random.default_rng(0).uniform(size=(16, *input_shape))
    with torch.no_grad():
        logits = copy(torch.from_numpy(x.astype("float32"))).numpy()
    np.testing.assert_allclose(
        logits, model.predict(x, verbose=0), rtol=1e-4, atol=1e-4
    )
    return PyTorchClassifier(
        copy,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=10,
        clip_values=(0.0, 1.0),
        channels_first=False,
        device_type="cpu",
    )


def art_apgd_dlr(model, **settings):
    from art.attacks.evasion import AutoProjectedGradientDescent

    return AutoProjectedGradientDescent(
        art_classifier(model, (8, 8, 1)),
        norm=np.inf,
        eps=EPS,
        eps_step=2 * EPS,
        max_iter=STEPS,
        nb_random_init=1,
        batch_size=200,
        loss_type="difference_logits_ratio",
        verbose=False,
        **settings,
    )


def test_apgd_dlr_matches_art(digits_relu, data):
    x, y = data
    theirs = art_apgd_dlr(digits_relu).generate(x, y)
    ours = APGD(digits_relu, eps=EPS, loss="dlr", steps=STEPS, seed=0)
    ours_accuracy = accuracy(digits_relu, ours.generate(x, y), y)
    assert 0.2 < ours_accuracy < accuracy(digits_relu, x, y) - 0.2
    assert abs(ours_accuracy - accuracy(digits_relu, theirs, y)) <= 0.02


@pytest.mark.slow
def test_apgd_t_matches_art_targeted_dlr_on_the_same_targets(
    digits_relu, data
):
    # ART's targeted APGD with the DLR loss, run as APGD-T runs: once per
    # target (the 2nd, 3rd, ... largest clean logit) on the inputs still
    # classified correctly.
    x, y = data
    art = art_apgd_dlr(digits_relu, targeted=True)
    targets = target_classes(digits_relu.predict(x, verbose=0), 2).numpy()
    robust = np.argmax(digits_relu.predict(x, verbose=0), axis=1) == y
    for target in targets:
        index = np.flatnonzero(robust)
        x_adv = art.generate(x[index], np.eye(10)[target[index]])
        wrong = np.argmax(digits_relu.predict(x_adv, verbose=0), axis=1)
        robust[index[wrong != y[index]]] = False
    theirs = robust.mean()
    ours = APGDT(digits_relu, eps=EPS, steps=STEPS, n_target_classes=2, seed=0)
    ours_accuracy = accuracy(digits_relu, ours.generate(x, y), y)
    assert 0.2 < ours_accuracy < accuracy(digits_relu, x, y) - 0.2
    assert abs(ours_accuracy - theirs) <= 0.02


@pytest.mark.slow
def test_square_matches_art():
    # On the 28x28 MNIST net: AutoAttack and ART never start a window on
    # the last row or column (`randint(0, h - s)`), which we do; there
    # MNIST is blank, so both searches see the same problem. On 8x8 digits
    # that blind spot leaves ART 5 to 9 points weaker than ours.
    from art.attacks.evasion import SquareAttack

    mlp, x, y = paper_mlp()
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), mlp]
    )
    x, y = x[:200].reshape(-1, 28, 28, 1), y[:200]
    theirs = SquareAttack(
        art_classifier(model, (28, 28, 1)),
        norm=np.inf,
        max_iter=1000,
        eps=EPS,
        p_init=0.8,
        nb_restarts=1,
        batch_size=200,
        verbose=False,
    ).generate(x, y)
    ours = Square(model, eps=EPS, n_queries=1000, seed=0)
    ours_accuracy = accuracy(model, ours.generate(x, y), y)
    assert ours_accuracy < accuracy(model, x, y) - 0.5
    assert abs(ours_accuracy - accuracy(model, theirs, y)) <= 0.02
