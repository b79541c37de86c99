"""The models shipped in results/runs load with the code as it is: each .keras file, and each run directory's newest checkpoint, which holds the same weights as its model.keras.

It guards names: Keras keys a .keras file's weights by each layer's class name, so renaming
`layers.Conv2D` (tried: PatchConv2D, registered under the old name) loads the class but none of
its weights, and this test fails."""

import glob
import os

import numpy as np
import pytest

import maml_tf
from maml_tf.layers import Conv2D

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = sorted(glob.glob(os.path.join(ROOT, "results", "runs", "*", "*", "model.keras")))


@pytest.mark.skipif(not SHIPPED, reason="no model.keras in results/runs")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_shipped_model_and_its_checkpoint_load(path):
    from_file = maml_tf.load(path)
    assert any(isinstance(layer, Conv2D) for layer in from_file.model.layers)
    run = os.path.dirname(path)
    from_run = maml_tf.load(run)
    if from_run.iteration != from_file.iteration:
        pytest.skip(f"model.keras is of iteration {from_file.iteration}, the newest checkpoint "
                    f"{from_run.iteration}")
    for a, b in zip(from_file.model.weights, from_run.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
