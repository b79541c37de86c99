"""Quiet TensorFlow start-up for every command: importing this module holds back TensorFlow's start-up notices (whenever TensorFlow is first imported) and passes every other line on."""

import contextlib
import glob
import importlib.abc
import importlib.util
import os
import sys
import tempfile

# TensorFlow's I-level C++ lines (CPU features, ...); the lines below ignore it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Printed on every start, once per TensorFlow library loaded (twice), before absl's logging is
# set up, so TF_CPP_MIN_LOG_LEVEL does not reach them (measured with TensorFlow 2.21).
STARTUP_LINES = ("All log messages before absl::InitializeLog() is called",
                 "oneDNN custom operations are on")
# What the CUDA probe prints on a machine without an NVIDIA driver (among them an "E0000 ...
# failed call to cuInit" error line): true, and of no use there; CUDA_VISIBLE_DEVICES does
# not prevent them (measured).
NO_DRIVER_LINES = ("failed call to cuInit", "Could not find cuda drivers")


def has_nvidia_driver() -> bool:
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/proc/driver/nvidia")


def noise(line: str, driver: bool) -> bool:
    """Whether `line` is start-up noise (the CUDA probe's lines only without a driver)."""
    return any(p in line for p in STARTUP_LINES + (() if driver else NO_DRIVER_LINES))


@contextlib.contextmanager
def held_startup_lines():
    """Holds back stderr (file descriptor 2: the lines come from C++) while TensorFlow loads
    and lists its devices, then passes on every line that is not start-up noise.

    TF_CPP_MIN_LOG_LEVEL=0, set by the user, asks for every line: then nothing is held back."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    driver = has_nvidia_driver()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(l for l in lines if not noise(l, driver)))
            sys.stderr.flush()


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as usual, but runs its first import (and the device listing, where
    the CUDA probe runs) inside `held_startup_lines`: the module is loaded only when a command
    needs it, so `--help` and early errors stay fast."""

    searching = False  # True while this finder asks the others (find_spec comes back here)

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or self.searching:
            return None
        self.searching = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.searching = False
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def quiet_exec(module):
            if self in sys.meta_path:  # the first import is the only one that prints
                sys.meta_path.remove(self)
            with held_startup_lines():
                exec_module(module)
                module.config.list_physical_devices()

        spec.loader.exec_module = quiet_exec
        return spec


if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlow())
