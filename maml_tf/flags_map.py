"""The supervised run's command line: the original code's flag names -> Config (RL's is rl/flags_map)."""

import os

from maml_tf import flag_definitions
from maml_tf.errors import UserError
from maml_tf.experiment.config import Config
from maml_tf.flag_definitions import CACHE_ENV, DATA_ENV, STORE_ENV


# What only meta-training reads: the outer loop, the training's inner loop and Reptile's.
META_ONLY = ("stop_grad", "meta_lr", "meta_batch_size", "num_updates", "train_update_lr",
             "train_update_batch_size", "grad_clip", "inner_batch_size", "inner_optimizer",
             "meta_step", "meta_step_final", "eval_inner_batch_size")


def _refuse_unread(f):
    """UserError for a flag given that a supervised run would not read (silently kept, it looks in
    effect): the RL ones, the fine-tuning of a run that is no transfer baseline, meta-training's
    of one that is, and the logical CPUs of a run that is not mirrored."""
    why = {name: "the RL flags are for 2dnavigation" for name in flag_definitions.RL_ONLY}
    if f.baseline not in ("pretrained", "scratch"):
        why.update(dict.fromkeys(("finetune", "finetune_bn"),
                                 "--finetune(_bn) for --baseline=pretrained/scratch"))
    if f.baseline in ("pretrained", "scratch"):
        why.update(dict.fromkeys(META_ONLY, "a transfer baseline does no meta-training"))
    if f.strategy != "mirrored":
        why["num_cpu_devices"] = "--num_cpu_devices for --strategy=mirrored"
    given = [n for n in why if f[n].present and f[n].value != f[n].default]
    if given:
        reasons = ", ".join(dict.fromkeys(why[n] for n in given))
        raise UserError(f"--{', --'.join(given)}: not read by this run (--datasource={f.datasource}"
                        f"{'' if f.baseline in (None, 'None') else f', --baseline={f.baseline}'}): "
                        f"{reasons}")


def config_from_flags(f) -> Config:
    """Maps the original's flag names onto the library's vocabulary, once."""
    _refuse_unread(f)
    train_k = f.train_update_batch_size if f.train_update_batch_size != -1 else f.update_batch_size
    train_lr = f.train_update_lr if f.train_update_lr != -1 else f.update_lr
    default_query = 15 if f.datasource == "miniimagenet" else train_k
    if f.baseline not in (None, "None", "oracle", "pretrained", "scratch"):
        raise UserError(f"unknown baseline {f.baseline!r}: use oracle, pretrained, scratch or leave it unset")
    transfer = f.baseline if f.baseline in ("pretrained", "scratch") else "none"
    if f.grad_clip < 0 and f.grad_clip != -1:
        raise UserError(f"--grad_clip must be >= 0 (0: off) or -1 (10 for miniimagenet, else off), "
                        f"got {f.grad_clip:g}")
    # A baseline meta-trains nothing: the default iteration target would only be refused.
    metatrain = 0 if transfer != "none" and not f["metatrain_iterations"].present \
        else f.metatrain_iterations
    return Config(
        dataset=f.datasource, ways=f.num_classes, shots=train_k,
        queries=f.num_query if f.num_query != -1 else default_query,
        eval_shots=f.update_batch_size,
        eval_queries=f.num_query if f.num_query != -1 else f.update_batch_size,
        meta_batch_size=f.meta_batch_size, meta_lr=f.meta_lr, inner_lr=train_lr,
        eval_inner_lr=f.update_lr, inner_steps=f.num_updates, eval_inner_steps=f.test_num_updates,
        first_order=f.stop_grad, algorithm=f.algorithm, inner_batch_size=f.inner_batch_size,
        inner_optimizer=f.inner_optimizer, meta_step=f.meta_step, meta_step_final=f.meta_step_final,
        eval_inner_batch_size=f.eval_inner_batch_size, transductive=f.transductive,
        pretrain_iterations=f.pretrain_iterations, metatrain_iterations=metatrain,
        oracle=f.baseline == "oracle", baseline=transfer, finetune=f.finetune,
        finetune_bn=f.finetune_bn, pretrain_batch_size=f.pretrain_batch_size,
        pretrain_lr=f.pretrain_lr, norm=f.norm, num_filters=f.num_filters, conv=f.conv,
        max_pool=f.max_pool,
        grad_clip=f.grad_clip if f.grad_clip >= 0 else (10.0 if f.datasource == "miniimagenet" else 0.0),
        seed=f.seed, eval_seed=f.eval_seed, eval_tasks=f.num_test_tasks,
        eval_split="test" if f.test_set else "val", eval_record_steps=f.record_steps,
        val_interval=f.val_interval,
        val_tasks=f.num_val_tasks, checkpoint_interval=f.checkpoint_interval,
        print_interval=f.print_interval, log=f.log, onednn=f.onednn, jit_compile=f.jit_compile,
        intra_op_threads=f.intra_op_threads,
        strategy=f.strategy, num_cpu_devices=f.num_cpu_devices,
        data_dir=f.data_dir or os.environ.get(DATA_ENV) or "data", data_source=f.data_source,
        omniglot_split=f.omniglot_split, omniglot_resize=f.omniglot_resize,
        folder_split=f.folder_split, image_size=f.image_size, channels=f.channels,
        min_class_images=f.min_class_images,
        patience=f.patience, run_store=run_store(f),
        train=f.train, resume=f.resume, test_iter=f.test_iter, test_best=f.test_best,
        eval_dir=f.eval_dir or None, cache_dir=f.cache_dir or os.environ.get(CACHE_ENV)
        or os.path.join(os.path.expanduser("~"), ".cache", "maml_tf"),
        **variant_settings(f))


def run_store(f):
    """--run_store (else $MAML_TF_RUN_STORE), refused if it is no folder: a mistyped path would
    start a stored run over from iteration 0 instead of continuing it."""
    store = f.run_store or os.environ.get(STORE_ENV) or None
    if store and not os.path.isdir(store):
        given = "--run_store" if f.run_store else f"${STORE_ENV}"
        raise UserError(f"{given}={store}: no such folder (the stored runs' folder, e.g. "
                        "results/runs; leave it unset to keep no run store)")
    return store


def variant_settings(f) -> dict:
    """The MAML successors' flags as Config fields; --maml_plus_plus turns MAML++'s parts on,
    but a part's own flag, given, wins (an ablation: --maml_plus_plus --nomulti_step_loss)."""
    learned, msl, cosine = f.learned_inner_lr, f.multi_step_loss, f.cosine_meta_lr
    bnwb = f.per_step_bn_weights
    if f.maml_plus_plus:
        if f.algorithm != "maml":  # its parts are refused with Reptile, each by its own name
            raise UserError(f"--maml_plus_plus is a MAML successor, not for --algorithm={f.algorithm}")
        if learned == "per_param":
            raise UserError("--maml_plus_plus learns per-layer, per-step step sizes (LSLR): drop "
                            "--learned_inner_lr=per_param")
        several = f.num_updates >= 2  # one inner step has no steps to weigh or to tell apart
        part = lambda name, on: getattr(f, name) if f[name].present else on  # noqa: E731
        learned = part("learned_inner_lr", "per_layer_step")
        # MAML++'s mini-imagenet_maml++-mini-imagenet_*.json configs (whose 15 MSL epochs give
        # 7,500 below) keep the meta learning rate flat; its Omniglot ones anneal it to 1e-5.
        msl = part("multi_step_loss", several)
        cosine = part("cosine_meta_lr", f.datasource != "miniimagenet")
        bnwb = part("per_step_bn_weights", several and f.norm == "batch_norm")
        if learned == "none" and not (msl or cosine or bnwb):  # under a name that says MAML++
            raise UserError("--maml_plus_plus with every one of its parts switched off is plain "
                            "MAML: drop --maml_plus_plus")
    for name, needs, on in (("msl_anneal_iterations", "multi_step_loss", msl),
                            ("min_meta_lr", "cosine_meta_lr", cosine)):
        if f[name].present and not on:  # given, even at its default value: it would do nothing
            off = (" (--maml_plus_plus leaves it off on miniimagenet: give it too)"
                   if f.maml_plus_plus else " (or --maml_plus_plus): give both or neither")
            raise UserError(f"--{name} is read only with --{needs}{off}")
    anneal = f.msl_anneal_iterations
    if anneal == -1:  # MAML++'s multi_step_loss_num_epochs x total_iter_per_epoch
        anneal = 7500 if msl and f.datasource == "miniimagenet" else 5000
    return dict(anil=f.anil, learned_inner_lr=learned, multi_step_loss=msl,
                msl_anneal_iterations=anneal, first_order_iterations=f.first_order_iterations,
                cosine_meta_lr=cosine, min_meta_lr=f.min_meta_lr, per_step_bn_weights=bnwb)
