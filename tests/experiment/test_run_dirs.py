"""A run's directory has one author, `Config.run_name`: `main --print_run_dir` prints it for any flags, and run_experiments.sh asks for it instead of spelling it."""

import os
import re
import subprocess
import sys

import pytest

from maml_tf.experiment.config import Config
from maml_tf.experiment.run_id import run_name
from maml_tf.rl.config import RLConfig, run_name as rl_run_name

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def printed(*flags) -> str:
    proc = subprocess.run([sys.executable, "-m", "maml_tf.main", *flags, "--print_run_dir"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


@pytest.mark.parametrize("flags, config", [
    (["--datasource=omniglot", "--num_classes=20", "--meta_batch_size=16", "--update_batch_size=1",
      "--update_lr=0.1", "--num_updates=5"],
     Config(dataset="omniglot", ways=20, meta_batch_size=16, shots=1, inner_lr=0.1, inner_steps=5)),
    (["--datasource=miniimagenet", "--num_filters=32", "--max_pool=True", "--stop_grad=True",
      "--meta_batch_size=4", "--update_batch_size=1", "--update_lr=0.01", "--num_updates=5",
      "--train=False", "--test_set=True", "--test_best=True"],  # evaluation flags: the same run
     Config(dataset="miniimagenet", num_filters=32, max_pool=True, first_order=True,
            meta_batch_size=4, shots=1, inner_lr=0.01, inner_steps=5)),
    (["--datasource=omniglot", "--baseline=pretrained", "--metatrain_iterations=0",
      "--pretrain_iterations=5000"],
     Config(dataset="omniglot", baseline="pretrained", metatrain_iterations=0,
            pretrain_iterations=5000)),
])
def test_printed_directory_is_the_run_name(tmp_path, flags, config):
    assert printed(*flags, f"--logdir={tmp_path}") == os.path.join(str(tmp_path), run_name(config))
    assert not os.listdir(tmp_path)  # nothing written


def test_each_baseline_gets_its_own_run_directory(tmp_path):
    toy = [f"--logdir={tmp_path}", "--datasource=sinusoid", "--update_batch_size=5", "--meta_batch_size=4"]
    names = {printed(*toy, "--metatrain_iterations=10"),
             printed(*toy, "--metatrain_iterations=0", "--pretrain_iterations=10"),
             printed(*toy, "--metatrain_iterations=0", "--pretrain_iterations=10", "--baseline=oracle")}
    assert len(names) == 3 and sum("pretrained" in n for n in names) == 2, names


def test_rl_directory_too(tmp_path):
    got = printed("--datasource=2dnavigation", f"--logdir={tmp_path}", "--metatrain_iterations=100",
                  "--stop_grad=True")
    assert got == os.path.join(str(tmp_path), rl_run_name(RLConfig(metatrain_iterations=100,
                                                                    first_order=True)))


def test_run_experiments_spells_no_run_directory():
    script = open(os.path.join(ROOT, "run_experiments.sh")).read()
    # A run name is '<dataset>.<settings>' (omniglot.5way1shot..., sinusoid.k10...), or spelled
    # in parts (...2dnavigation + .maml.mbs20.paths20.lr0.1.seed0): none of its pieces appear.
    spelled = re.findall(r"(?:sinusoid|omniglot|miniimagenet|2dnavigation|folder-\w+)\.[\w.-]*"
                         r"(?:way|shot|mbs|conv|pretrained|scratch|seed|k\d)"
                         r"|\bmbs\d+\.|\.seed\d|\.conv\d\d|\.paths\d", script)
    assert not spelled, spelled


@pytest.mark.parametrize("args, said", [
    (["--quik", "sinusoid"], "error: unknown option --quik"),  # would run the full-size lines
    (["--quick", "sinusoid-report", "sinusoid-maml"], "error: one PATTERN at most"),
    (["--quick", "no-such-line"], "error: no run or report line's name contains 'no-such-line'"),
])
def test_run_experiments_refuses_what_it_would_misread(tmp_path, args, said):
    done = subprocess.run(["bash", os.path.join(ROOT, "run_experiments.sh"), *args], cwd=ROOT,
                          env=dict(os.environ, LOGDIR=str(tmp_path), PYTHON=sys.executable),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout.strip().startswith(said), done.stdout + done.stderr
    assert os.listdir(tmp_path) == []


def test_runs_of_several_seeds_get_their_own_directories():
    """`--seed=S` (S other than 0) ends the name with `.seedS`: three seeds of one setting train
    side by side instead of being refused as another run's settings; seed 0 keeps its name."""
    base = Config(dataset="omniglot", ways=20, meta_batch_size=16, shots=1, inner_lr=0.1, inner_steps=5)
    names = [run_name(base.replace(seed=s)) for s in (0, 1, 2)]
    assert names[0] == "omniglot.20way1shot.maml.mbs16.steps5.lr0.1.conv64"
    assert names[1:] == [names[0] + ".seed1", names[0] + ".seed2"]


def test_a_run_of_another_seed_named_before_seeds_were_in_names_still_resumes(tmp_path):
    """Its directory, named without .seed<S>, holds a run of that seed: the same flags find it."""
    from maml_tf.experiment.run_id import existing_name

    config = Config(dataset="omniglot", seed=3)
    older = tmp_path / run_name(config.replace(seed=0))
    older.mkdir()
    assert existing_name(config, str(tmp_path)) == run_name(config)  # no record: the new name
    (older / "config.json").write_text(config.to_json())
    assert existing_name(config, str(tmp_path)) == older.name
    assert existing_name(config.replace(seed=4), str(tmp_path)) == run_name(config.replace(seed=4))
    (older / "config.json").write_text(config.replace(seed=0).to_json())  # seed 0's own run
    assert existing_name(config, str(tmp_path)) == run_name(config)
    assert printed("--datasource=omniglot", "--seed=3", f"--logdir={tmp_path}") == \
        os.path.join(str(tmp_path), run_name(config))
