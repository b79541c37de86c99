"""Every kind of run (meta-training, supervised pretraining, RL) goes through the one loop: one writer, SIGINT saves and exits 130, its identity is checked, its small files are written atomically."""

import builtins
import os
import signal
import subprocess
import sys

import pytest

from maml_tf.bench import faults
from main_probe import refused_before_tensorflow
from maml_tf.experiment import train
from maml_tf.transfer import pretrain
from maml_tf.experiment.config import Config
from maml_tf.rl import train as rl_train
from maml_tf.rl.config import RLConfig
from test_rundir import TOY
from test_transfer import ToySampler, toy_config

LONG = 10 ** 6  # still running when a signal or a second writer comes


def kinds(small, cache):
    """{kind: (flags(logdir, iterations), a defining flag changed)} of toy runs through main."""
    common = ["--checkpoint_interval=100000", "--print_interval=1", "--val_interval=0", "--run_name=toy"]
    pre = ["--datasource=miniimagenet", f"--data_dir={small}", f"--cache_dir={cache}",
           "--baseline=pretrained", "--metatrain_iterations=0", "--pretrain_batch_size=8",
           "--num_filters=4", "--max_pool=True", "--num_classes=3", "--update_batch_size=1"]
    rl = ["--datasource=2dnavigation", "--meta_batch_size=2", "--fast_batch_size=2",
          "--max_path_length=5"]
    return {
        "metatrain": (lambda d, n: faults.toy_flags(d, n, 100000), "--meta_lr=0.01"),
        "pretrain": (lambda d, n: pre + common + [f"--pretrain_iterations={n}", f"--logdir={d}"],
                     "--pretrain_lr=0.5"),
        "rl": (lambda d, n: rl + common + [f"--metatrain_iterations={n}", f"--logdir={d}"],
               "--update_lr=0.2"),
    }


def start(flags):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "maml_tf.main", *flags], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_iteration(proc, n):
    for line in proc.stdout:
        if "] iter " in line and int(line.split("] iter ", 1)[1].split("/", 1)[0]) >= n:
            return
    raise AssertionError(f"ended before iteration {n}: {proc.stderr.read()[-2000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pretrain", "rl"])  # meta-training: test_interrupts.py, test_rundir.py
def test_lock_interrupt_and_identity_hold_for_every_kind_of_run(kind, small, tmp_path):
    flags, changed = kinds(small, tmp_path / "cache")[kind]
    first = start(flags(tmp_path, LONG))
    wait_for_iteration(first, 2)
    second = refused_before_tensorflow(*flags(tmp_path, LONG))
    assert faults.last_line(second).startswith(f"error: {tmp_path / 'toy'} is in use by pid {first.pid}")
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=300)
    line = faults.last_line(err)
    assert first.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert line.startswith("interrupted: SIGINT: stopped after iteration ") and "saved in" in line
    saved = int(line.split("stopped after iteration ", 1)[1].split("/", 1)[0])
    assert os.path.exists(tmp_path / "toy" / "checkpoints" / f"ckpt-{saved}.index")
    assert not os.path.exists(tmp_path / "toy" / "lock")
    refused = refused_before_tensorflow(*flags(tmp_path, LONG), changed)
    assert "holds a run with other settings" in faults.last_line(refused)


@pytest.fixture
def plain_writes(monkeypatch, tmp_path):
    """Paths under tmp_path that Python opened for writing in place (not a temporary file to
    rename): a kill during such a write would leave the file torn."""
    written, real_open = [], builtins.open

    def spy(file, mode="r", *args, **kwargs):
        path = os.path.abspath(str(file)) if isinstance(file, (str, os.PathLike)) else ""
        if any(m in mode for m in "wax") and path.startswith(str(tmp_path)) and \
                not os.path.basename(path).startswith("."):
            written.append(os.path.relpath(path, tmp_path))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    return written


@pytest.mark.parametrize("kind", ["metatrain", "pretrain", "rl"])
def test_the_small_files_are_written_atomically(kind, tmp_path, plain_writes):
    workdir = str(tmp_path / "run")
    if kind == "metatrain":
        train.train_and_evaluate(Config(**TOY), workdir)
    elif kind == "pretrain":
        sampler = ToySampler()
        pretrain.pretrain(toy_config(), workdir, sampler=sampler, arrays=sampler.arrays())
    else:
        rl_train.train(RLConfig(hidden=(8,), paths=3, horizon=6, meta_batch_size=2,
                                metatrain_iterations=4, val_interval=2, val_tasks=2,
                                checkpoint_interval=2), workdir)
    assert {"config.json", "runinfo.json"} <= set(os.listdir(workdir))
    assert plain_writes == []
