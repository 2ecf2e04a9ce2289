"""Retrofit pretrained `keras.applications` backbones with capped heads.

Importing `retrofit` registers its layers with Keras, so that a run's
`model.keras` loads with `keras.saving.load_model` after `import retrofit`
(the capped layers themselves come from `keras_drelu`, which it imports).
"""

from retrofit.startup import load_keras_quietly

load_keras_quietly()

from retrofit import backbones  # noqa: E402, F401  (registers BackbonePreprocessing)
