"""Every command starts quietly: no TensorFlow start-up lines on stderr, even without TF_CPP_MIN_LOG_LEVEL."""

import os
import re
import subprocess
import sys

from maml_tf.experiment.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A C++ log line (I0000 / W0000 / E0000 ...) or the notice absl prints before its first one.
NOISE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|absl::InitializeLog|oneDNN|cuInit|cuda drivers", re.M)


def run(module, *args, cwd):
    """`python -m module args` (or `python -c code` with module "-c") without TF_CPP_MIN_LOG_LEVEL."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = ROOT
    command = [sys.executable, module, *args] if module == "-c" else [sys.executable, "-m", module, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def assert_quiet(proc):
    assert not NOISE.findall(proc.stderr), proc.stderr


def test_classify_and_export_errors_after_tensorflow_loads_are_quiet(tmp_path):
    # a model that is not there is found by the loader, after TensorFlow has loaded
    for module, args in (("maml_tf.classify", ["--model", "nope", "--support", ".", "--query", "."]),
                         ("maml_tf.export", ["--run", "nope", "--out", "out"])):
        proc = run(module, *args, cwd=tmp_path)
        assert proc.returncode == 1
        assert_quiet(proc)
        assert proc.stderr.strip().splitlines() == ["error: nope is neither a run directory nor a .keras file"]


def test_fits_is_quiet_and_a_missing_run_is_one_line(tmp_path):
    from maml_tf.experiment import train

    train.train_and_evaluate(Config(metatrain_iterations=1, checkpoint_interval=1, val_interval=0,
                                    eval_inner_steps=1, log=False), str(tmp_path / "run"))
    proc = run("maml_tf.reports.fits", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_quiet(proc)
    assert (tmp_path / "run" / "fits.png").exists()
    proc = run("maml_tf.reports.fits", "nothing", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: nothing is not a run directory") and proc.stderr.count("\n") == 1


def test_training_is_quiet(tmp_path):
    proc = run("maml_tf.main", "--metatrain_iterations=1", "--val_interval=0", "--log=False",
               f"--logdir={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_quiet(proc)


def test_reports_are_quiet_when_they_load_tensorflow(tmp_path):
    # the sinusoid, Omniglot and transfer reports load TensorFlow inside their functions
    proc = run("-c", "import maml_tf.reports.sinusoid\nimport tensorflow as tf\nprint(int(tf.constant(1)))",
               cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == "1\n", proc.stderr
    assert_quiet(proc)
