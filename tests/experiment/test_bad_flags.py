"""Flags that would put a run outside --logdir, train with no inner step or ask for more memory than the machine has are refused with one line, before anything is written or allocated."""

import os
import resource
import subprocess
import sys

import pytest

from maml_tf.datasets import memory
from maml_tf.errors import UserError
from maml_tf.experiment.config import Config

GIB = 2 ** 30


def limit_memory():
    """The child's address space capped: were a size not refused, its allocation fails at once
    instead of taking the shared machine's memory."""
    resource.setrlimit(resource.RLIMIT_AS, (4 * GIB, 4 * GIB))


def run_main(cwd, *flags):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "maml_tf.main", *flags], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300, preexec_fn=limit_memory)


def refused(proc) -> str:
    """The one line of a refused command (exit 1, no traceback)."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    return lines[0]


def files_under(path):
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)


SINE = ["--datasource=sinusoid", "--metatrain_iterations=2", "--val_interval=0", "--log=False"]
NAME = "must be one folder name inside --logdir (no '/', not '.' or '..')"


@pytest.mark.parametrize("run_name", ["../escape", "{tmp}/elsewhere", "a/b", "..", "."])
def test_a_run_name_that_leaves_logdir_or_nests_is_refused(tmp_path, run_name):
    logdir, work = tmp_path / "logs", tmp_path / "work"
    os.makedirs(logdir), os.makedirs(work)
    name = run_name.format(tmp=tmp_path)
    for train in ("True", "False"):
        line = refused(run_main(work, *SINE, f"--logdir={logdir}", f"--run_name={name}", f"--train={train}"))
        assert line == f"error: --run_name={name} {NAME}"
    assert files_under(tmp_path) == []  # nothing written: not ../escape, not elsewhere, not a/b


@pytest.mark.parametrize("datasource", ["sinusoid", "2dnavigation"])
def test_an_empty_logdir_is_refused(tmp_path, datasource):
    line = refused(run_main(tmp_path, f"--datasource={datasource}", "--metatrain_iterations=2",
                            "--logdir="))
    assert line == "error: --logdir is empty: give the folder that holds the run directories"
    assert files_under(tmp_path) == []  # not into the working directory


def test_the_rl_command_refuses_an_escaping_run_name(tmp_path):
    line = refused(run_main(tmp_path, "--datasource=2dnavigation", f"--logdir={tmp_path}/logs",
                            "--run_name=../rl"))
    assert line == f"error: --run_name=../rl {NAME}"


@pytest.mark.parametrize("args, said", [
    (["stray"], "error: unexpected arguments: stray (flags are written --name=value; "),
    (["--num_classes=abc"], "error: flag --num_classes=abc: invalid literal for int() with base 10: 'abc'"),
    (["--no_such_flag=1"], "error: Unknown command line flag 'no_such_flag'"),
])
def test_an_argument_absl_cannot_parse_is_one_line_not_the_help(tmp_path, args, said):
    assert refused(run_main(tmp_path, *SINE, f"--logdir={tmp_path}", *args)).startswith(said)


@pytest.mark.parametrize("args, said", [
    (["--max_kl=3", "--later_update_lr=0.5"], "--max_kl, --later_update_lr: not read by this run "
                                              "(--datasource=sinusoid): the RL flags are for 2dnavigation"),
    (["--finetune=head"], "--finetune: not read by this run (--datasource=sinusoid)"),
    (["--baseline=oracle", "--finetune_bn=moving"], "(--datasource=sinusoid, --baseline=oracle)"),
    (["--num_cpu_devices=4"], "--num_cpu_devices: not read by this run (--datasource=sinusoid): "
                              "--num_cpu_devices for --strategy=mirrored"),
    (["--num_cpu_devices=4", "--max_kl=3"], "the RL flags are for 2dnavigation, --num_cpu_devices for"),
])
def test_a_flag_a_supervised_run_would_not_read_is_refused(tmp_path, args, said):
    """Kept silently, it would look in effect (a MAML run given --finetune=head adapts every layer)."""
    assert said in refused(run_main(tmp_path, *SINE, f"--logdir={tmp_path}", *args, "--print_run_dir"))


NO_STEP = ("error: inner_steps (--num_updates) must be at least 1 to meta-train; training on the "
           "query loss alone is --pretrain_iterations=N --metatrain_iterations=0")


@pytest.mark.parametrize("algorithm", ["maml", "reptile"])
def test_meta_training_with_no_inner_step_is_refused(tmp_path, algorithm):
    line = refused(run_main(tmp_path, *SINE, f"--logdir={tmp_path}", "--num_updates=0",
                            f"--algorithm={algorithm}"))
    assert line == NO_STEP and files_under(tmp_path) == []


def test_no_inner_step_is_fine_where_nothing_is_meta_trained():
    """The pretrained baselines and an evaluation with no test step keep working."""
    Config(inner_steps=0, metatrain_iterations=0, pretrain_iterations=10).validate()
    Config(eval_inner_steps=0, eval_record_steps="auto").validate()
    with pytest.raises(UserError, match="must be at least 1 to meta-train"):
        Config(inner_steps=0, metatrain_iterations=10, pretrain_iterations=10).validate()


@pytest.mark.parametrize("tasks, need", [(10**9, "74.5 GiB"), (10**12, "74,505.8 GiB")])
def test_a_meta_batch_larger_than_memory_is_refused_before_allocating(tmp_path, tasks, need):
    """The issue's command: 1e9 sinusoid tasks of 10 points, at least 74.5 GiB (it allocated 149
    and died with a traceback); 1e12, more than any machine has."""
    if tasks * 10 * 8 <= (memory.machine_memory() or 0):
        pytest.skip("this machine has the memory for it")
    line = refused(run_main(tmp_path, f"--logdir={tmp_path}", f"--meta_batch_size={tasks}"))
    assert line.startswith(f"error: a meta-batch of {tasks * 10:,} examples needs at least {need} "
                           "at 8 bytes each, more than this machine's "), line
    assert line.endswith(" GiB of memory: lower --meta_batch_size, --update_batch_size or --num_query")
    assert files_under(tmp_path) == []


OMNIGLOT = dict(dataset="omniglot", ways=5, shots=1, queries=1, eval_shots=1, eval_queries=1)


@pytest.mark.parametrize("config, need, flag", [
    # 5-way 1-shot Omniglot: 10 examples a task, 785 floats each
    (Config(**OMNIGLOT, meta_batch_size=300_000), 300_000 * 10 * 785 * 4,
     "--meta_batch_size, --update_batch_size or --num_query"),
    (Config(dataset="sinusoid", shots=5, queries=5, eval_shots=10**8, eval_queries=10**8),
     25 * 2 * 10**8 * 8, "--update_batch_size or --num_query"),
    (Config(**OMNIGLOT, meta_batch_size=1, metatrain_iterations=0, pretrain_iterations=5,
            baseline="pretrained", pretrain_batch_size=3_000_000),
     3_000_000 * 785 * 4, "--pretrain_batch_size"),
])
def test_the_estimate_counts_every_batch_a_run_allocates(config, need, flag):
    available = 8 * GIB
    assert need > available
    with pytest.raises(UserError) as err:
        memory.check_task_memory(config, available)
    assert f"needs at least {need / GIB:,.1f} GiB at {memory.example_bytes(config):,} bytes each" in str(err.value)
    assert str(err.value).endswith(f"more than this machine's 8.0 GiB of memory: lower {flag}")


def test_batches_that_fit_are_accepted():
    memory.check_task_memory(Config(**OMNIGLOT, meta_batch_size=32), 1 * GIB)  # the paper's: 1 MB
    memory.check_task_memory(Config(dataset="miniimagenet", ways=5, shots=5, queries=15, meta_batch_size=2), GIB)
    assert memory.example_bytes(Config(dataset="miniimagenet")) == 4 * (84 * 84 * 3 + 1)
    assert memory.example_bytes(Config(dataset="sinusoid", oracle=True)) == 4 * 4


def test_the_memory_estimate_follows_a_folder_datasets_image_size():
    big = Config(dataset="folder", image_size=224, channels=3)
    assert memory.example_bytes(big) == 4 * (224 * 224 * 3 + 1)
    assert memory.example_bytes(Config(dataset="folder")) == 4 * (84 * 84 * 3 + 1)  # auto: at most


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_run_store_that_is_no_folder_is_refused(tmp_path, how):
    """A mistyped store path would have started a stored run over from iteration 0."""
    typo = str(tmp_path / "reslts" / "runs")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MAML_TF_RUN_STORE=typo if how == "environment" else "")
    flag = [f"--run_store={typo}"] if how == "flag" else []
    proc = subprocess.run([sys.executable, "-m", "maml_tf.main", *SINE, f"--logdir={tmp_path}/logs", *flag],
                          capture_output=True, text=True, env=env, timeout=300)
    given = "--run_store" if how == "flag" else "$MAML_TF_RUN_STORE"
    assert refused(proc) == (f"error: {given}={typo}: no such folder (the stored runs' folder, "
                             "e.g. results/runs; leave it unset to keep no run store)")
    assert not os.path.exists(tmp_path / "logs") and not os.path.exists(tmp_path / "reslts")


@pytest.mark.parametrize("args, said", [
    (["--grad_clip=-5"], "error: --grad_clip must be >= 0 (0: off) or -1 (10 for miniimagenet, else "
                         "off), got -5"),  # was taken as -1
    (["--patience=100"], "error: --patience=100 stops a run after that many iterations without a "
                         "better meta-validation: it needs --val_interval > 0"),  # SINE validates never
    (["--num_updates=1", "--multi_step_loss", "--print_run_dir"], "--num_updates of 2 or more"),
    (["--first_order_iterations=10", "--stop_grad", "--print_run_dir"], "drop --stop_grad"),
])
def test_settings_that_would_be_ignored_or_refused_later_are_refused_at_once(tmp_path, args, said):
    """--print_run_dir printed a directory for settings the run itself refuses."""
    assert said in refused(run_main(tmp_path, *SINE, f"--logdir={tmp_path}", *args))


def test_print_run_dir_reads_no_data(tmp_path):
    """The reports ask for run directories on machines that may lack the data."""
    proc = run_main(tmp_path, "--datasource=omniglot", "--num_classes=20", f"--logdir={tmp_path}",
                    f"--data_dir={tmp_path}/none", "--print_run_dir")
    assert proc.returncode == 0 and proc.stdout.strip().startswith(f"{tmp_path}/omniglot.20way"), proc.stderr
