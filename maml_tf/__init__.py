"""maml_tf: MAML, first-order MAML and Reptile for TensorFlow 2 / Keras 3 models."""

__version__ = "0.1.0"
