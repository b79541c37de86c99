"""Fixtures of the library tests: the float64 checks put Keras back to float32 when they end."""

import keras
import pytest


@pytest.fixture
def restore_floatx():
    """A test may switch Keras to float64 for a 1e-9 comparison; the next test starts in float32."""
    yield
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
