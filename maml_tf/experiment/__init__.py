"""The experiment runner behind `main`: Config, Experiment, training, evaluation, checkpoints, devices and run records (imports no TensorFlow itself)."""
