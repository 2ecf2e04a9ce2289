"""The Fast Gradient Sign Method (Goodfellow et al., 2015)."""

from keras import ops

from keras_drelu import backends
from keras_drelu.attacks.base import Attack
from keras_drelu.attacks.losses import cross_entropy
from keras_drelu.attacks.pgd import ascent_direction
from keras_drelu.attacks.pgd import project


class FGSM(Attack):
    """One gradient step of length `eps` on the cross-entropy.

    Formula:
    ```python
    x_adv = clip(x + eps * sign(grad_x CE(f(x), y)))        # "linf"
    x_adv = clip(x + eps * grad / ||grad||_2)               # "l2"
    ```

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.full((2, 4), 0.5, "float32")
    >>> x_adv = FGSM(model, eps=0.1).generate(x, np.array([0, 1]))
    >>> x_adv.shape
    (2, 4)

    Args:
        model: A Keras classifier.
        eps: Radius of the threat model.
        **kwargs: `norm`, `clip_values`, `outputs`, `batch_size`, `seed` as
            in `Attack`.
    """

    name = "FGSM"
    kind = "single-step"

    def _attack_batch(self, x, y, keys):
        low, high = self.clip_values

        def loss(x):
            return ops.sum(cross_entropy(self.logits(x), y)), None

        _, _, grad = backends.value_and_grad(loss, x)
        delta = project(
            self.eps * ascent_direction(grad, self.norm), self.eps, self.norm
        )
        return ops.clip(x + delta, low, high)
