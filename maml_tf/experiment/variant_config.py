"""The settings of MAML's successors (ANIL, Meta-SGD, MAML++'s parts): what is on, what is refused, the run name's parts."""

from maml_tf.errors import UserError

# none: the fixed inner_lr; per_layer_step: MAML++'s LSLR; per_param: Meta-SGD
# (maml_tf.inner_rates.GRANULARITIES, repeated here so the runner's flags load no TensorFlow).
LEARNED_INNER_LR = ("none", "per_layer_step", "per_param")
# MAML++'s schedules step once per epoch of this many iterations (maml_tf.variants, repeated here
# for the same reason).
ITERATIONS_PER_EPOCH = 500
# A part's own setting, read only when the part is on (Config's defaults).
SUB_SETTINGS = {"msl_anneal_iterations": ("multi_step_loss", 5000),
                "min_meta_lr": ("cosine_meta_lr", 1e-5)}
FIELDS = ("anil", "learned_inner_lr", "multi_step_loss", "msl_anneal_iterations",
          "first_order_iterations", "cosine_meta_lr", "min_meta_lr", "per_step_bn_weights")


def turned_on(config) -> list:
    """The variants' flags `config` turns on (empty: plain MAML)."""
    on = {"anil": config.anil, "learned_inner_lr": config.learned_inner_lr != "none",
          "multi_step_loss": config.multi_step_loss,
          "first_order_iterations": config.first_order_iterations > 0,
          "cosine_meta_lr": config.cosine_meta_lr,
          "per_step_bn_weights": config.per_step_bn_weights}
    return [f"--{name}" for name, value in on.items() if value]


def validate(config):
    """One UserError line for a value out of range or a combination that means nothing."""
    if config.learned_inner_lr not in LEARNED_INNER_LR:
        raise UserError(f"unknown learned_inner_lr {config.learned_inner_lr!r}: use one of "
                        f"{', '.join(LEARNED_INNER_LR)}")
    for name in ("msl_anneal_iterations", "first_order_iterations", "min_meta_lr"):
        if not 0 <= getattr(config, name) < float("inf"):
            raise UserError(f"{name} must be >= 0 and finite, got {getattr(config, name)}")
    for name, (part, default) in SUB_SETTINGS.items():
        if getattr(config, name) != default and not getattr(config, part):
            raise UserError(f"--{name}={getattr(config, name):g} is read only with --{part} "
                            "(or --maml_plus_plus): give both or neither")
    on = turned_on(config)
    if not on:
        return
    if config.algorithm != "maml":  # Reptile's inner loop is first order, its outer step SGD
        raise UserError(f"{', '.join(on)}: MAML variants, not for --algorithm={config.algorithm}")
    if config.baseline != "none" or config.oracle or config.pretrain_iterations:
        raise UserError(f"{', '.join(on)}: MAML variants, for meta-training; not with "
                        "--baseline or --pretrain_iterations")
    if config.learned_inner_lr != "none" and config.eval_inner_lr != config.inner_lr:
        raise UserError(f"--learned_inner_lr={config.learned_inner_lr}: the run adapts with its "
                        f"learned step sizes (which start at {config.inner_lr:g}), so an evaluation "
                        f"step size {config.eval_inner_lr:g} would be ignored: give --update_lr "
                        "alone, as in training")
    if config.first_order_iterations and config.first_order:
        raise UserError("--first_order_iterations anneals first order into second order: "
                        "drop --stop_grad")
    if config.multi_step_loss and not config.msl_anneal_iterations:
        raise UserError("--msl_anneal_iterations must be positive with --multi_step_loss")
    if config.multi_step_loss and config.msl_anneal_iterations % ITERATIONS_PER_EPOCH:
        raise UserError(f"--msl_anneal_iterations={config.msl_anneal_iterations} must be a multiple "
                        f"of {ITERATIONS_PER_EPOCH}: MAML++ anneals once per epoch of "
                        f"{ITERATIONS_PER_EPOCH} iterations")
    if config.multi_step_loss and config.inner_steps < 2:
        raise UserError("--multi_step_loss weighs the query loss after each inner step: it needs "
                        "--num_updates of 2 or more")
    if config.per_step_bn_weights and (config.norm != "batch_norm" or config.inner_steps < 2):
        raise UserError("--per_step_bn_weights gives each inner step its own batch-norm "
                        "parameters: it needs --norm=batch_norm and --num_updates of 2 or more")
    if config.cosine_meta_lr and config.min_meta_lr > config.meta_lr:
        raise UserError(f"--min_meta_lr={config.min_meta_lr:g} is above --meta_lr={config.meta_lr:g}")


def notices(config) -> list:
    """What a run with these variants does that its flags may not make plain (one line each)."""
    lines = []
    if config.train and 0 < config.metatrain_iterations <= config.first_order_iterations:
        lines.append(f"--first_order_iterations={config.first_order_iterations} covers all "
                     f"{config.metatrain_iterations} iterations: first order throughout, as "
                     "--stop_grad, unless the run is extended")
    if config.train and config.cosine_meta_lr and config.metatrain_iterations <= ITERATIONS_PER_EPOCH:
        lines.append(f"--cosine_meta_lr steps once per {ITERATIONS_PER_EPOCH}-iteration epoch: over "
                     f"{config.metatrain_iterations} iterations the meta learning rate stays "
                     "--meta_lr")
    per_step = [n for n, on in (("learned step sizes", config.learned_inner_lr == "per_layer_step"),
                                ("batch-norm parameters", config.per_step_bn_weights)) if on]
    if per_step and config.eval_inner_steps > config.inner_steps:
        lines.append(f"validation and evaluation take {config.eval_inner_steps} steps "
                     f"(--test_num_updates), {config.inner_steps} trained: the steps after "
                     f"{config.inner_steps} reuse step {config.inner_steps}'s "
                     f"{' and '.join(per_step)}")
    return lines


def name_parts(config) -> list:
    """The run directory name's parts for the variants (none for plain MAML, whose names stay)."""
    parts = ["anil"] if config.anil else []
    parts += {"per_param": ["metasgd"], "per_layer_step": ["lslr"]}.get(config.learned_inner_lr, [])
    if config.multi_step_loss:
        parts.append(f"msl{config.msl_anneal_iterations}")
    if config.first_order_iterations:
        parts.append(f"fo{config.first_order_iterations}")
    if config.cosine_meta_lr:
        parts.append(f"cos{config.min_meta_lr:g}")
    if config.per_step_bn_weights:
        parts.append("bnwb")
    return parts
