"""Common corruptions (CIFAR-10-C family) for robustness in the broad sense.

Batched, seeded image functions with severities 1 to 5, a registry by name,
`evaluate_corruptions` for accuracy and mCE, and `RandomCorruption` for
training-time augmentation.
"""

from keras_drelu.corruptions.arguments import SEVERITIES
from keras_drelu.corruptions.augmentation import RandomCorruption
from keras_drelu.corruptions.blur import defocus_blur
from keras_drelu.corruptions.blur import gaussian_blur
from keras_drelu.corruptions.blur import motion_blur
from keras_drelu.corruptions.digital import brightness
from keras_drelu.corruptions.digital import contrast
from keras_drelu.corruptions.digital import jpeg_compression
from keras_drelu.corruptions.digital import pixelate
from keras_drelu.corruptions.evaluation import CorruptionResult
from keras_drelu.corruptions.evaluation import evaluate_corruptions
from keras_drelu.corruptions.geometric import rotation
from keras_drelu.corruptions.geometric import translation
from keras_drelu.corruptions.noise import gaussian_noise
from keras_drelu.corruptions.noise import impulse_noise
from keras_drelu.corruptions.noise import shot_noise
from keras_drelu.corruptions.registry import CATEGORIES
from keras_drelu.corruptions.registry import CORRUPTIONS
from keras_drelu.corruptions.registry import corrupt
from keras_drelu.corruptions.registry import get
from keras_drelu.corruptions.weather import fog

__all__ = [
    "CATEGORIES",
    "CORRUPTIONS",
    "CorruptionResult",
    "RandomCorruption",
    "SEVERITIES",
    "brightness",
    "contrast",
    "corrupt",
    "defocus_blur",
    "evaluate_corruptions",
    "fog",
    "gaussian_blur",
    "gaussian_noise",
    "get",
    "impulse_noise",
    "jpeg_compression",
    "motion_blur",
    "pixelate",
    "rotation",
    "shot_noise",
    "translation",
]
