"""What names a run's directory, and which settings a resume or an evaluation of it must keep."""

import os

from maml_tf.experiment import variant_config
from maml_tf.experiment.config import Config
from maml_tf.workdir import identity

# Fields that change what a run computes (its weights or its validation record): resuming a
# run with other values is refused. The others are speed (onednn, jit_compile, threads,
# strategy, eval_batch_size), bookkeeping (intervals, logging, paths) or evaluation-only
# (eval_split, eval_tasks), and the iteration target may grow (but see identity_fields).
IDENTITY_FIELDS = ("dataset", "ways", "shots", "queries", "meta_batch_size", "meta_lr",
                   "inner_steps", "inner_lr", "first_order", "algorithm", "oracle", "norm",
                   "num_filters", "conv", "max_pool", "grad_clip", "seed", "pretrain_iterations",
                   "data_source", "omniglot_split", "omniglot_resize", "inner_batch_size",
                   "inner_optimizer", "meta_step", "meta_step_final", "eval_seed", "val_tasks",
                   "eval_inner_steps", "baseline", "pretrain_batch_size", "pretrain_lr",
                   "folder_split", "image_size", "channels", "min_class_images")
# Reptile validates as it is evaluated, and anneals epsilon over the iteration target.
REPTILE_IDENTITY_FIELDS = ("eval_shots", "eval_queries", "eval_inner_lr", "eval_inner_batch_size",
                           "transductive", "metatrain_iterations")


# MAML's successors change what a run computes (a config.json older than them lacks them: it matches).
IDENTITY_FIELDS += variant_config.FIELDS


def identity_fields(config: Config) -> identity.Fields:
    """The fields a resume of `config`'s run must keep."""
    fields, why = IDENTITY_FIELDS, {}
    if config.algorithm == "reptile":
        fields += REPTILE_IDENTITY_FIELDS
        why["metatrain_iterations"] = ("Reptile anneals its outer step size over the iteration "
                                       "target, so a longer run is another schedule")
    if config.cosine_meta_lr:
        fields += ("metatrain_iterations",) * ("metatrain_iterations" not in fields)
        why["metatrain_iterations"] = ("--cosine_meta_lr anneals the meta learning rate over the "
                                       "iteration target, so a longer run is another schedule")
    return identity.Fields(fields, why)


# What an evaluation may choose for itself; every other identity field defines the network and
# the weights it is given, so an evaluation with another value would load a different model.
# `queries` too: --num_query at evaluation sets the test tasks' query sets (e.g. 15 per class,
# as MAML++ and later papers test; `_queries<Q>` files); training's count made the run, not its
# weights. Reptile's evaluation keeps the count it validated with, at any K: its rows' protocol.
EVALUATION_FREE_FIELDS = ("eval_seed", "val_tasks", "eval_inner_steps", "queries")


def evaluation_fields(config: Config) -> identity.Fields:
    """The fields an evaluation of `config`'s run must share with its training."""
    fields = [k for k in IDENTITY_FIELDS if k not in EVALUATION_FREE_FIELDS]
    if config.algorithm == "reptile":
        return identity.Fields(fields + ["eval_queries"], {"eval_queries": (
            "a Reptile run is tested with the query count it validated with (--num_query)")})
    return identity.Fields(fields)


def pretraining_fields() -> identity.Fields:
    """A pretraining's defining settings; a longer --pretrain_iterations is allowed (the
    learning rate is constant and batch i depends on i only, so 2,000 steps extended to 4,000
    are the same steps as 4,000 from the start). Its validation fine-tunes by --finetune and
    --finetune_bn, so they choose its best model too."""
    why = "the validation that chooses the best pretrained model fine-tunes so"
    return identity.Fields([k for k in IDENTITY_FIELDS if k != "pretrain_iterations"]
                           + ["finetune", "finetune_bn"], {"finetune": why, "finetune_bn": why})


# What a pretrained network is: an evaluation of it may choose everything else (ways, K, the
# fine-tuning and its steps), and a longer pretraining is the same run.
BASELINE_NETWORK_FIELDS = ("dataset", "norm", "num_filters", "conv", "max_pool", "seed",
                           "data_source", "omniglot_split", "omniglot_resize", "baseline",
                           "pretrain_batch_size", "pretrain_lr", "folder_split", "image_size",
                           "channels", "min_class_images")


def existing_name(config: Config, logdir: str) -> str:
    """`run_name(config)`, or the name a run of another --seed had before names ended with
    .seed<S> (3d708da), where that directory holds a run of this seed: its flags still resume it."""
    name = run_name(config)
    if config.seed == Config.seed or os.path.isdir(os.path.join(logdir, name)):
        return name
    older = name[:-len(f".seed{config.seed}")]
    saved = identity.saved_settings(os.path.join(logdir, older), ("seed",))
    return older if saved and saved.get("seed") == config.seed else name


def run_name(config: Config) -> str:
    """A readable run directory name from the settings that define a run (as the original's exp_string)."""
    # A folder run is named after its folder too: data_dir is no identity field, so another
    # folder under the same name would resume this run's checkpoints.
    parts = [f"folder-{os.path.basename(os.path.normpath(config.data_dir)) or 'root'}"
             if config.dataset == "folder" else config.dataset.replace(":", "-").replace("/", "-")]
    if config.baseline != "none":  # one pretraining serves every N-way K-shot setting
        parts.append(f"{config.baseline}.bs{config.pretrain_batch_size}.lr{config.pretrain_lr:g}"
                     if config.baseline == "pretrained" else config.baseline)
    elif config.dataset != "sinusoid":
        parts.append(f"{config.ways}way{config.shots}shot")
    else:
        parts.append(f"k{config.shots}")
    if config.metatrain_iterations > 0:
        parts.append(config.algorithm + ("_fo" if config.first_order else ""))
        parts.append(f"mbs{config.meta_batch_size}.steps{config.inner_steps}.lr{config.inner_lr:g}")
        if config.algorithm == "reptile":
            parts.append(f"{config.inner_optimizer}.ib{config.inner_batch_size}"
                         f".eps{config.meta_step:g}-{config.meta_step_final:g}")
    if config.pretrain_iterations > 0 and config.baseline == "none":
        parts.append("pretrained")
    if config.oracle:
        parts.append("oracle")
    if config.dataset != "sinusoid":
        parts.append(("conv" if config.conv else "fc") + (f"{config.num_filters}" if config.conv else ""))
        if config.max_pool:
            parts.append("maxpool")
    if config.norm != "batch_norm":
        parts.append(f"norm{config.norm}")
    if config.dataset == "omniglot" and config.omniglot_split != "random":
        parts.append(config.omniglot_split)
    if config.dataset == "omniglot" and config.omniglot_resize != "original":
        parts.append(config.omniglot_resize)
    parts.extend(variant_config.name_parts(config))  # none for plain MAML
    if config.seed != Config.seed:  # runs of several seeds side by side (the default's name unchanged)
        parts.append(f"seed{config.seed}")
    return ".".join(parts)
