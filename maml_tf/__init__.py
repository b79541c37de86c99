"""maml_tf: MAML, first-order MAML and Reptile for TensorFlow 2 / Keras 3 models.

The library's public names are loaded on first use (PEP 562), so `import maml_tf` does not import
TensorFlow: `main` sets TensorFlow's environment variables (`experiment/runtime.py`) before it loads.
"""

import importlib

__version__ = "0.1.0"

# name -> the library module defining it
_API = {
    "Learner": "maml_tf.models",
    "adapt": "maml_tf.algorithms",
    "maml_meta_grads": "maml_tf.algorithms",
    "reptile_meta_grads": "maml_tf.algorithms",
    "adaptation_curve": "maml_tf.evaluation",
    "load": "maml_tf.deploy.loading",
    "MetaModel": "maml_tf.deploy.meta",
}
_SUBMODULES = ("algorithms", "evaluation", "models", "layers", "kernels", "metrics", "inner_opt", "types")

__all__ = [*_API, *_SUBMODULES]


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
