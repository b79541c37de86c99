"""Process-wide TensorFlow settings taken from the Config; they must be set before TensorFlow loads."""

import os
import sys

SMALL_BATCH = 10  # images per convolution call up to which Eigen beats oneDNN (measured)


def use_onednn(config) -> bool:
    """oneDNN or Eigen CPU kernels (`config.onednn`: "on", "off" or "auto").

    Measured on a 2-core AVX-512 CPU (results/performance.md): Eigen runs the strided conv
    net's convolutions 35-40% cheaper when each call sees at most ~10 images (Omniglot 5-way
    1-shot, 1 query); from 20 images on (20-way, 15 queries) oneDNN is as fast or ~10% faster,
    and on the max-pool net's 84x84 stride-1 convolutions it is 2x faster. "auto" follows that.
    """
    if config.onednn != "auto":
        return config.onednn == "on"
    images_per_call = config.ways * max(config.shots, config.queries)
    return config.max_pool or images_per_call > SMALL_BATCH


def configure(config) -> bool:
    """Applies `use_onednn(config)`; returns False (and changes nothing) if TensorFlow is loaded.

    TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it is imported, so `main` calls this
    before its first TensorFlow import. GPUs are unaffected.
    """
    if "tensorflow" in sys.modules:
        return False
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if use_onednn(config) else "0"
    return True
