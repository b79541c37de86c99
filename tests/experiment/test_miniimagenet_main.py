"""MiniImageNet through main: the original README's commands map to the paper's settings, and train and evaluate on synthetic images."""

import json

import numpy as np


README_1SHOT = ("--datasource=miniimagenet --metatrain_iterations=60000 --meta_batch_size=4 "
                "--update_batch_size=1 --update_lr=0.01 --num_updates=5 --num_classes=5 "
                "--logdir=logs/miniimagenet1shot/ --num_filters=32 --max_pool=True").split()


def parse_flags(argv):
    from maml_tf import main

    main.FLAGS.unparse_flags()
    main.FLAGS(["main"] + argv)
    return main.config_from_flags(main.FLAGS)


def test_original_readme_commands_map_to_the_paper_settings():
    one = parse_flags(README_1SHOT)
    assert (one.ways, one.shots, one.queries, one.eval_shots, one.eval_queries) == (5, 1, 15, 1, 1)
    assert (one.meta_batch_size, one.inner_steps, one.inner_lr, one.grad_clip) == (4, 5, 0.01, 10.0)
    assert (one.num_filters, one.max_pool, one.norm, one.first_order) == (32, True, "batch_norm", False)
    five = parse_flags([a.replace("update_batch_size=1", "update_batch_size=5").replace(
        "meta_batch_size=4", "meta_batch_size=2") for a in README_1SHOT] + ["--stop_grad=True"])
    assert (five.shots, five.queries, five.eval_queries, five.meta_batch_size) == (5, 15, 5, 2)
    assert five.first_order and five.grad_clip == 10.0
    from maml_tf import main

    main.FLAGS.unparse_flags()


def test_main_trains_and_evaluates_on_synthetic_images(full, tmp_path, capsys):
    """The README 1-shot command through main, shrunk to a few cheap iterations, then its evaluation."""
    from maml_tf import main

    shrink = ["--meta_batch_size=2", "--num_updates=1", "--metatrain_iterations=2", "--val_interval=2",
              "--num_val_tasks=2", "--print_interval=1", "--test_num_updates=3", "--log=False",
              f"--data_dir={full}", f"--cache_dir={tmp_path / 'cache'}", f"--logdir={tmp_path}"]
    argv = [a for a in README_1SHOT if not a.startswith("--logdir")] + shrink
    parse_flags(argv)
    main.main(["main"])
    out = capsys.readouterr().out
    assert "[metatrain] iter 2/2" in out and "[val] iter 2" in out
    # the log names the score model selection reads: accuracy after the last validation step (3),
    # not only after the training step count (1)
    (row,) = [json.loads(line) for p in tmp_path.rglob("validation.jsonl") for line in p.open()]
    assert row["steps"] == [0, 1, 3]
    assert f"selection score (after 3 steps) {row['accuracy'][-1]:.4g}  new best" in out
    parse_flags(argv + ["--train=False", "--test_set=True", "--num_test_tasks=8"])
    main.main(["main"])
    main.FLAGS.unparse_flags()
    (result_file,) = [p for p in tmp_path.rglob("eval_test_*.json")]
    result = json.loads(result_file.read_text())
    acc = np.asarray(result["metrics"]["accuracy"]["mean"])
    assert result["num_tasks"] == 8 and result["shots"] == 1 and acc.shape == (4,)
    assert np.isfinite(result["metrics"]["loss"]["mean"]).all()
    # the synthetic classes differ in colour: 3 test-time steps from one image per class must
    # lift query accuracy well above the 20% of an unadapted 5-way guess
    assert acc[0] < 0.45 and acc[-1] > acc[0] + 0.3, acc
