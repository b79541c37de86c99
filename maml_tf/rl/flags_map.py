"""The RL run's command line: the original's shared flags (the paper's RL values unless given) plus the RL-only ones -> RLConfig."""

from maml_tf.errors import UserError
from maml_tf.flags_map import run_store
from maml_tf.rl.config import RLConfig

# RL defaults for the shared flags when not given (the paper's 2D navigation settings).
RL_DEFAULTS = dict(update_lr=0.1, meta_batch_size=20, metatrain_iterations=500, num_test_tasks=40,
                   test_num_updates=3, checkpoint_interval=10, print_interval=1, val_interval=25,
                   num_val_tasks=40)


# Flags of supervised meta-learning that the RL runs do not read: given, they are refused rather
# than dropped (a --maml_plus_plus 2dnavigation run trained plain MAML-TRPO under the plain name).
NOT_READ = ("algorithm", "baseline", "maml_plus_plus", "anil", "learned_inner_lr", "multi_step_loss",
            "msl_anneal_iterations", "first_order_iterations", "cosine_meta_lr", "min_meta_lr",
            "per_step_bn_weights", "num_classes", "update_batch_size", "train_update_batch_size",
            "num_query", "meta_lr", "grad_clip", "norm", "num_filters", "conv",
            "max_pool", "inner_batch_size", "inner_optimizer", "eval_inner_batch_size",
            "transductive", "meta_step", "meta_step_final", "test_best", "patience", "record_steps",
            "eval_dir", "finetune", "finetune_bn", "pretrain_batch_size", "pretrain_lr",
            "data_source", "omniglot_split", "omniglot_resize", "folder_split", "image_size",
            "min_class_images", "channels", "num_cpu_devices")


def config_from_flags(f) -> RLConfig:
    """The RL run's config: shared flags (RL defaults unless given) plus the RL-only ones."""
    given = [n for n in NOT_READ if f[n].present and f[n].value != f[n].default]
    if given:
        raise UserError(f"--{', --'.join(given)}: not read by --datasource=2dnavigation, whose "
                        "runs are MAML (or first-order MAML) with a TRPO meta-step (README: 2D "
                        "navigation)")
    get = lambda name: getattr(f, name) if f[name].present else RL_DEFAULTS[name]  # noqa: E731
    return RLConfig(
        env=f.datasource, meta_batch_size=get("meta_batch_size"), paths=f.fast_batch_size,
        horizon=f.max_path_length, discount=f.discount,
        inner_lr=f.train_update_lr if f.train_update_lr != -1 else get("update_lr"),
        inner_steps=f.num_updates, eval_inner_lr=get("update_lr"), eval_later_lr=f.later_update_lr,
        eval_inner_steps=get("test_num_updates"), first_order=f.stop_grad,
        pretrain_iterations=f.pretrain_iterations, metatrain_iterations=get("metatrain_iterations"),
        max_kl=f.max_kl, cg_iters=f.cg_iters, seed=f.seed, eval_seed=f.eval_seed,
        eval_tasks=get("num_test_tasks"), eval_split="test" if f.test_set else "val",
        val_interval=get("val_interval"),
        val_tasks=get("num_val_tasks"), checkpoint_interval=get("checkpoint_interval"),
        print_interval=get("print_interval"), log=f.log, train=f.train, resume=f.resume,
        test_iter=f.test_iter, run_store=run_store(f))
