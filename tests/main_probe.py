"""`python -m maml_tf.main` run so that the test learns whether it had imported TensorFlow when it ended."""

import subprocess
import sys

PROBE = ("import runpy, sys\ntry:\n    runpy.run_module('maml_tf.main', run_name='__main__')\n"
         "finally:\n    print('tensorflow imported:', 'tensorflow' in sys.modules)")


def refused_before_tensorflow(*args) -> str:
    """The stderr of main refusing `args` (exit 1) before it imported TensorFlow."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "tensorflow imported: False" in done.stdout, \
        (done.stdout[-500:], done.stderr[-2000:])
    return done.stderr
