"""Builders of results/*.md (+ JSON, PNG) from run directories, sharing one writer."""

# Before any report loads TensorFlow (several do, to evaluate or plot a run): its start-up lines held back.
from maml_tf import quiet  # noqa: F401
