"""MAML's successors on the command line: refused combinations are one-line errors, run names change with a variant and only then, and `--help` names each flag's paper."""

import os
import subprocess
import sys

import pytest

from maml_tf.errors import UserError
from maml_tf.experiment import variant_config
from maml_tf.experiment.config import Config
from maml_tf.experiment.run_id import run_name
from test_variant_training import SINE, VARIANTS


@pytest.mark.parametrize("settings, message", [
    (dict(algorithm="reptile", anil=True), "--anil: MAML variants, not for --algorithm=reptile"),
    (dict(algorithm="reptile", learned_inner_lr="per_param"), "not for --algorithm=reptile"),
    (dict(algorithm="reptile", multi_step_loss=True), "not for --algorithm=reptile"),
    (dict(learned_inner_lr="per_step"), "unknown learned_inner_lr 'per_step'"),
    (dict(first_order=True, first_order_iterations=100), "drop --stop_grad"),
    (dict(multi_step_loss=True, msl_anneal_iterations=0), "must be positive with --multi_step_loss"),
    (dict(cosine_meta_lr=True, min_meta_lr=0.1), "--min_meta_lr=0.1 is above --meta_lr=0.001"),
    (dict(anil=True, pretrain_iterations=10), "not with --baseline or --pretrain_iterations"),
    (dict(anil=True, oracle=True), "not with --baseline or --pretrain_iterations"),  # --baseline=oracle
    (dict(first_order_iterations=-1), "first_order_iterations must be >= 0"),
    (dict(per_step_bn_weights=True, norm="None", inner_steps=2), "needs --norm=batch_norm"),
    (dict(per_step_bn_weights=True, inner_steps=1), "--num_updates of 2 or more"),
    (dict(learned_inner_lr="per_param", inner_lr=0.1, eval_inner_lr=0.5),
     "evaluation step size 0.5 would be ignored"),
    (dict(multi_step_loss=True, inner_steps=1), "--num_updates of 2 or more"),
    (dict(multi_step_loss=True, msl_anneal_iterations=300), "must be a multiple of 500"),
    (dict(cosine_meta_lr=True, min_meta_lr=float("nan")), "min_meta_lr must be >= 0 and finite"),
    (dict(msl_anneal_iterations=1000), "--msl_anneal_iterations=1000 is read only with --multi_step_loss"),
    (dict(learned_inner_lr="per_layer_step", min_meta_lr=1e-4), "is read only with --cosine_meta_lr"),
])
def test_meaningless_combinations_are_one_line_errors(settings, message):
    with pytest.raises(UserError, match=None) as err:
        Config(**settings).validate()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_notices_say_what_the_flags_leave_implicit():
    fo = Config(first_order_iterations=100, metatrain_iterations=20)
    assert variant_config.notices(fo) == ["--first_order_iterations=100 covers all 20 iterations: "
                                          "first order throughout, as --stop_grad, unless the run "
                                          "is extended"]
    assert variant_config.notices(fo.replace(metatrain_iterations=200)) == []
    lslr = Config(learned_inner_lr="per_layer_step", inner_steps=5, eval_inner_steps=10)
    assert variant_config.notices(lslr) == [
        "validation and evaluation take 10 steps (--test_num_updates), 5 trained: the steps after "
        "5 reuse step 5's learned step sizes"]
    assert variant_config.notices(lslr.replace(eval_inner_steps=5)) == []
    assert variant_config.notices(lslr.replace(learned_inner_lr="per_param")) == []  # no steps


def test_run_names_change_with_a_variant_and_only_then():
    plain = Config(**SINE)
    assert run_name(plain) == "sinusoid.k10.maml.mbs25.steps2.lr0.01.normNone"  # as before
    omniglot = Config(dataset="omniglot", ways=20, shots=1, meta_batch_size=16, inner_lr=0.1,
                      inner_steps=5)
    assert run_name(omniglot) == "omniglot.20way1shot.maml.mbs16.steps5.lr0.1.conv64"
    names = {run_name(plain.replace(**v)) for v in VARIANTS.values()}
    assert len(names) == len(VARIANTS) and run_name(plain) not in names
    assert run_name(omniglot.replace(**VARIANTS["maml_plus_plus"])).endswith(
        ".conv64.lslr.msl5000.fo200.cos1e-05")


def main(*flags):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "maml_tf.main", *flags], capture_output=True,
                          text=True, env=env, timeout=300)


def test_flags_are_in_help_and_maml_plus_plus_refuses_meta_sgd(tmp_path):
    asked = main("--helpfull")
    helped = asked.stdout
    assert asked.returncode == 0 and main("--helpshort").returncode == 0  # absl's exit 1: no error
    for flag, paper in [("anil", "Raghu"), ("learned_inner_lr", "Meta-SGD"),
                        ("multi_step_loss", "MAML++"), ("first_order_iterations", "MAML++"),
                        ("cosine_meta_lr", "MAML++"), ("per_step_bn_weights", "MAML++"),
                        ("maml_plus_plus", "ICLR 2019")]:
        text = helped.split(f"{flag}: ", 1)[1][:400]
        assert paper in text, flag
    proc = main(f"--logdir={tmp_path}", "--maml_plus_plus", "--learned_inner_lr=per_param")
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "error: --maml_plus_plus learns per-layer, per-step step sizes (LSLR): drop "
        "--learned_inner_lr=per_param"]


def test_maml_plus_plus_parts_given_explicitly_win_and_rl_refuses_the_variants(tmp_path):
    sine = [f"--logdir={tmp_path}", "--datasource=sinusoid", "--norm=None", "--num_updates=2",
            "--maml_plus_plus", "--print_run_dir"]
    full = main(*sine).stdout.strip()
    assert full.endswith(".lslr.msl5000.cos1e-05"), full
    assert main(*sine, "--nomulti_step_loss").stdout.strip().endswith(".lslr.cos1e-05")
    assert main(*sine, "--learned_inner_lr=none").stdout.strip().endswith(".msl5000.cos1e-05")
    assert main(*sine, "--num_updates=1").stdout.strip().endswith(".lslr.cos1e-05")  # nothing to weigh
    for flags in (["--maml_plus_plus"], ["--algorithm=reptile"], ["--anil", "--train=False"],
                  ["--num_cpu_devices=4"]):
        proc = main(f"--logdir={tmp_path}", "--datasource=2dnavigation", *flags, "--print_run_dir")
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-2000:]
        assert "not read by --datasource=2dnavigation" in lines[0]


@pytest.mark.parametrize("flags, said", [
    (["--algorithm=reptile"], "error: --maml_plus_plus is a MAML successor, not for --algorithm=reptile"),
    (["--learned_inner_lr=none", "--nomulti_step_loss", "--nocosine_meta_lr"],
     "error: --maml_plus_plus with every one of its parts switched off is plain MAML: drop "
     "--maml_plus_plus"),
])
def test_maml_plus_plus_that_would_train_something_else_is_refused(tmp_path, flags, said):
    """Both trained plain Reptile or plain MAML without a word (the first under MAML++'s name)."""
    proc = main(f"--logdir={tmp_path}", "--datasource=sinusoid", "--norm=None", "--num_updates=2",
                "--maml_plus_plus", *flags, "--print_run_dir")
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [said], proc.stderr[-2000:]


def test_maml_plus_plus_on_miniimagenet_keeps_its_meta_lr_flat_as_its_released_configs(tmp_path):
    """MAML++'s miniImageNet configs set min_learning_rate = meta_learning_rate (no annealing),
    its Omniglot ones 1e-5; a part's own setting given without the part is refused, even at its
    default value (it was accepted when equal to the default)."""
    name = main(f"--logdir={tmp_path}", "--datasource=miniimagenet", "--maml_plus_plus",
                "--num_updates=5", "--print_run_dir").stdout.strip()
    assert name.endswith(".lslr.msl7500.bnwb"), name
    for flag, needs in (("--msl_anneal_iterations=5000", "--multi_step_loss"),
                        ("--min_meta_lr=1e-05", "--cosine_meta_lr")):
        proc = main(f"--logdir={tmp_path}", "--datasource=sinusoid", "--norm=None", flag,
                    "--print_run_dir")
        assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
            f"error: {flag.split('=')[0]} is read only with {needs} (or --maml_plus_plus): give "
            "both or neither"], proc.stderr[-2000:]
