"""Process-wide TensorFlow settings taken from the Config; they must be set before TensorFlow loads."""

import os
import sys


def use_onednn(config) -> bool:
    """oneDNN or Eigen CPU kernels (`config.onednn`: "on", "off" or "auto").

    Measured on a 2-core AVX-512 CPU (results/performance.md): Eigen runs the Omniglot net's
    small stride-2 convolutions (5-20 images of 28x28 per call) faster; oneDNN is faster on the
    MiniImageNet net's stride-1, max-pooled convolutions on 84x84 images; the sinusoid MLP does
    not care. "auto" follows that split.
    """
    if config.onednn != "auto":
        return config.onednn == "on"
    return config.max_pool


def configure(config) -> bool:
    """Applies `use_onednn(config)`; returns False (and changes nothing) if TensorFlow is loaded.

    TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it is imported, so `main` calls this
    before its first TensorFlow import. GPUs are unaffected.
    """
    if "tensorflow" in sys.modules:
        return False
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if use_onednn(config) else "0"
    return True
