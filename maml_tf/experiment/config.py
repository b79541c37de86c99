"""The frozen experiment configuration, built once (from flags in `main`, directly in tests)."""

import dataclasses
import functools
import importlib
import json
import os
from typing import Optional

from maml_tf.errors import UserError
from maml_tf.experiment import recorded, variant_config

ALGORITHMS = ("maml", "reptile")
NORMS = ("batch_norm", "layer_norm", "None")
ONEDNN = ("auto", "on", "off")
INNER_OPTIMIZERS = ("sgd", "adam")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
TRANSFER_BASELINES = ("none", "pretrained", "scratch")
FINETUNE = ("all", "head", "nearest", "cosine")
# Every setting with a fixed set of values, declared once: `validate` checks them and main's
# --flags offer them (absl enums built from here).
CHOICES = {"algorithm": ALGORITHMS, "inner_optimizer": INNER_OPTIMIZERS, "onednn": ONEDNN,
           "strategy": STRATEGIES, "finetune": FINETUNE, "finetune_bn": ("batch", "moving"),
           "baseline": TRANSFER_BASELINES, "data_source": ("files", "tfds"),
           "omniglot_split": ("random", "alphabets", "within_alphabet"),
           "omniglot_resize": ("original", "lanczos")}
CHOICES["learned_inner_lr"] = variant_config.LEARNED_INNER_LR  # MAML's successors (issue 41)


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a run, in the library's vocabulary (ways, shots, support, query...)."""

    dataset: str = "sinusoid"
    ways: int = 5  # classes per task (classification only)
    shots: int = 5  # support examples per class (K) in meta-training
    queries: int = 5  # query examples per class in meta-training
    eval_shots: int = 5  # K at evaluation (the original's --update_batch_size at test time)
    eval_queries: int = 5
    meta_batch_size: int = 25
    meta_lr: float = 1e-3
    inner_lr: float = 1e-3
    eval_inner_lr: float = 1e-3
    inner_steps: int = 1
    eval_inner_steps: int = 10
    first_order: bool = False
    algorithm: str = "maml"
    # Reptile: inner_steps are its inner iterations, shots its train shots per class, and
    # meta_batch_size its tasks per meta-update; the outer step is SGD with step size epsilon.
    inner_batch_size: int = 0  # support examples per inner step, in turn; 0 = all (MAML: 0)
    inner_optimizer: str = "sgd"  # "sgd", or "adam" with beta1 = 0 as the Reptile paper (Reptile only)
    eval_inner_batch_size: int = 0  # Reptile at evaluation: support examples per step; 0 = all
    meta_step: float = 1.0  # Reptile's epsilon at the first meta-iteration...
    meta_step_final: float = 0.0  # ...annealed linearly to this at the last
    pretrain_iterations: int = 0  # joint training on all tasks (no inner loop) before meta-training
    metatrain_iterations: int = 15000
    oracle: bool = False  # sinusoid: the network also sees amplitude and phase
    # Transfer-learning baselines on images (transfer/pretrain.py, transfer/baselines.py):
    # "pretrained" (supervised over all meta-train classes, pretrain_iterations steps), "scratch".
    baseline: str = "none"
    finetune: str = "all"  # at test time: "all", "head" (features frozen), "nearest", "cosine"
    finetune_bn: str = "batch"  # fine-tuned net's batch norm: "batch" statistics or "moving" ones
    pretrain_batch_size: int = 64  # images per supervised pretraining step
    pretrain_lr: float = 0.1  # its SGD (momentum 0.9) step size
    norm: str = "batch_norm"
    num_filters: int = 64
    conv: bool = True
    max_pool: bool = False
    grad_clip: float = 0.0  # clip each meta-gradient entry to ±grad_clip; 0 = off
    seed: int = 0
    eval_seed: int = 1234  # fixed, so every run is tested on the same tasks
    eval_tasks: int = 600
    eval_batch_size: int = 25  # tasks evaluated per compiled call
    eval_split: str = "val"  # "val" or "test"
    eval_record_steps: str = "auto"  # steps a test evaluation records (recorded.eval_steps)
    # True: query examples predicted in one batch (batch norm shares their statistics, as MAML);
    # False: each query example in a batch with the support set only.
    transductive: bool = True
    val_interval: int = 500  # meta-validation during training every N iterations; 0 = off
    val_tasks: int = 100
    checkpoint_interval: int = 1000
    print_interval: int = 100
    keep_checkpoints: int = 3
    # Stop when meta-validation has not improved for this many iterations (0: never), as a paper
    # run may; the best-validation model is kept in checkpoints/best either way.
    patience: int = 0
    # A folder of runs kept in the project (workdir/snapshot.py): a run directory without a
    # checkpoint starts from its stored copy, so a run continues on another machine.
    run_store: Optional[str] = None
    # Where an evaluation writes its eval_*.json/csv (None: the run directory; for a read-only one)
    eval_dir: Optional[str] = None
    log: bool = True  # TensorBoard summaries
    data_dir: str = "data"
    data_source: str = "files"  # "files" (the official archives under data_dir) or "tfds"
    omniglot_split: str = "random"  # "random" (the original's), "alphabets", "within_alphabet"
    omniglot_resize: str = "original"  # "original" (what its Pillow call produced) or "lanczos"
    cache_dir: Optional[str] = None
    # --datasource=folder (datasets/folder.py): train,val,test fractions of ROOT/<class>/ classes
    # (a fixed seed; unused for ROOT/{train,val,test}/), the image side (0: the most common, at
    # most 84) and channels (0: grey if every image is, else RGB; 1 grey; 3 RGB).
    folder_split: str = "0.64,0.16,0.2"
    image_size: int = 0
    channels: int = 0
    min_class_images: int = 0  # a folder's classes with fewer images are left out (0: none)
    # Speed only: the maths and the results do not depend on these (results/performance.md).
    onednn: str = "auto"  # CPU kernels: "on" oneDNN, "off" Eigen, "auto": Eigen for tiny batches
    jit_compile: bool = False  # XLA-compile the meta-step: for GPUs (~8x slower on CPU)
    intra_op_threads: int = 1  # CPU threads per op (tasks run in parallel anyway); 0 = TF's default
    # Where the meta-batch runs (maml_tf/distribute.py): split evenly over the replicas.
    strategy: str = "default"  # "default" (one device), "mirrored", "multi_worker" or "tpu"
    num_cpu_devices: int = 2  # mirrored without GPUs: logical CPU devices (replicas), for testing
    # What is done with the run (main's --train/--resume/--test_iter/--test_best): never part of
    # its identity, so one run directory serves training, its resumes and its evaluations.
    train: bool = True  # False: evaluate a checkpoint
    resume: bool = True  # continue from the run's newest checkpoint if there is one
    test_iter: int = -1  # the checkpoint an evaluation restores (-1: the newest)
    test_best: bool = False  # evaluate the best-validation model instead of test_iter's
    # MAML's successors, each off by default (maml_tf/variants.py). ANIL: the inner loop adapts
    # the head only. Learned step sizes: "per_param" (Meta-SGD), "per_layer_step" (MAML++'s
    # LSLR), started at inner_lr. MAML++: the multi-step loss annealed to the last step over
    # msl_anneal_iterations; first order for the first first_order_iterations; the meta LR
    # cosine-annealed per 500-iteration epoch to min_meta_lr over metatrain_iterations.
    anil: bool = False
    learned_inner_lr: str = "none"
    multi_step_loss: bool = False
    msl_anneal_iterations: int = 5000
    first_order_iterations: int = 0
    cosine_meta_lr: bool = False
    min_meta_lr: float = 1e-5
    per_step_bn_weights: bool = False  # MAML++'s BNWB: each inner step's own batch-norm parameters

    @property
    def total_iterations(self) -> int:
        return self.pretrain_iterations + self.metatrain_iterations

    def validate(self) -> "Config":
        """Raises UserError for a value out of range; returns self. Checked once per distinct
        config (the entry points each call it; a folder dataset's check reads its files)."""
        return _validated(self)

    def check_settings(self) -> "Config":
        """`validate` but for the dataset's own checks and the memory estimate, which read its files (--print_run_dir:
        the directory of the run the flags define, on a machine that may lack its data)."""
        self._check(read_data=False)
        return self

    def _check(self, read_data: bool = True):
        self._check_ranges()
        self._check_dataset(read_data)
        self._check_choices()
        self._validate_reptile()
        self._validate_transfer()
        self._check_evaluation()
        variant_config.validate(self)

    def _check_ranges(self):
        positive = ["ways", "shots", "queries", "eval_shots", "eval_queries", "meta_batch_size",
                    "eval_tasks", "eval_batch_size", "num_filters", "val_tasks",
                    "checkpoint_interval", "print_interval", "keep_checkpoints", "num_cpu_devices"]
        for name in positive:
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be positive, got {getattr(self, name)}")
        if self.ways < 2 and self.dataset != "sinusoid":  # sinusoid regresses: ways is unused
            raise UserError(f"ways (--num_classes) must be at least 2 to classify, got {self.ways}")
        for name in ["meta_lr", "inner_lr", "eval_inner_lr"]:
            if not 0 < getattr(self, name) < float("inf"):
                raise UserError(f"{name} must be a finite positive learning rate, got {getattr(self, name)}")
        for name in ["inner_steps", "eval_inner_steps", "pretrain_iterations",
                     "metatrain_iterations", "val_interval", "grad_clip", "patience", "inner_batch_size",
                     "eval_inner_batch_size",
                     "meta_step_final", "seed", "eval_seed"]:  # numpy's seeds are non-negative
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.inner_steps == 0 and self.metatrain_iterations:  # the meta-gradient needs a step
            raise UserError("inner_steps (--num_updates) must be at least 1 to meta-train; training on "
                            "the query loss alone is --pretrain_iterations=N --metatrain_iterations=0")
        if self.intra_op_threads < 0:
            raise UserError(f"intra_op_threads must be >= 0 (0: TensorFlow's default), got {self.intra_op_threads}")

    def _check_dataset(self, read_data: bool):
        from maml_tf.datasets import module_name, own_images  # the registry only; no data loaded
        from maml_tf.datasets.memory import check_task_memory

        name = module_name(self.dataset)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        folder_only = [n for n in ("folder_split", "image_size", "channels", "min_class_images")
                       if getattr(self, n) != defaults[n]]
        if folder_only and not own_images(self.dataset):
            raise UserError(f"--{', --'.join(folder_only)} set: only --datasource=folder and "
                            "tfds:NAME read them")
        module = importlib.import_module(name)
        if read_data and self.dataset != "sinusoid" and os.path.isfile(self.data_dir):
            raise UserError(f"the data directory {self.data_dir} is a file, not a directory")
        if read_data and hasattr(module, "check_config"):  # its own limits, before TensorFlow loads
            module.check_config(self)
        if read_data:  # before a batch too large for the machine is allocated
            check_task_memory(self)
        if self.oracle and self.dataset != "sinusoid":
            raise UserError("the oracle baseline exists for sinusoid only")

    def _check_choices(self):
        if self.algorithm not in ALGORITHMS:
            raise UserError(f"unknown algorithm {self.algorithm!r}: use one of {ALGORITHMS}")
        if self.norm not in NORMS:
            raise UserError(f"unknown norm {self.norm!r}: use one of {NORMS}")
        if self.onednn not in ONEDNN:
            raise UserError(f"onednn must be one of {ONEDNN}, got {self.onednn!r}")
        if self.strategy not in STRATEGIES:
            raise UserError(f"unknown strategy {self.strategy!r}: use one of {', '.join(STRATEGIES)}")
        for name in ("data_source", "omniglot_split", "omniglot_resize"):
            allowed = CHOICES[name]
            if getattr(self, name) not in allowed:
                raise UserError(f"unknown {name} {getattr(self, name)!r}: use one of {', '.join(allowed)}")
        if self.patience and self.strategy == "multi_worker":  # only the chief validates
            raise UserError("--patience needs the validation every worker sees: not with multi_worker")
        if self.patience and not self.val_interval:  # it would never stop the run
            raise UserError(f"--patience={self.patience} stops a run after that many iterations "
                            "without a better meta-validation: it needs --val_interval > 0")

    def _check_evaluation(self):
        if self.eval_split not in ("val", "test"):
            raise UserError(f"eval_split must be 'val' or 'test', got {self.eval_split!r}")
        recorded.eval_steps(self.eval_inner_steps, self.eval_record_steps)  # UserError if bad
        if self.test_iter < -1:
            raise UserError(f"test_iter must be a checkpoint's iteration or -1 (the newest), got {self.test_iter}")
        if self.test_best and self.test_iter != -1:  # one of them would be ignored
            raise UserError(f"--test_best evaluates the best-validation model: give it or "
                            f"--test_iter={self.test_iter}, not both")

    def _validate_reptile(self):
        if self.inner_optimizer not in INNER_OPTIMIZERS:
            raise UserError(f"unknown inner_optimizer {self.inner_optimizer!r}: use one of "
                            f"{', '.join(INNER_OPTIMIZERS)}")
        if self.algorithm == "reptile":
            if not self.meta_step > 0:
                raise UserError(f"meta_step (Reptile's epsilon) must be positive, got {self.meta_step}")
            if self.pretrain_iterations:
                raise UserError("pretrain_iterations is a MAML baseline; Reptile has none")
        elif self.inner_optimizer != "sgd" or self.inner_batch_size or self.eval_inner_batch_size:
            raise UserError("inner_optimizer and (eval_)inner_batch_size are Reptile settings: "
                            "add --algorithm=reptile")

    def _validate_transfer(self):
        choices = {name: CHOICES[name] for name in ("baseline", "finetune", "finetune_bn")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserError(f"unknown {name} {getattr(self, name)!r}: use one of {', '.join(allowed)}")
        if self.baseline != "none":
            if self.dataset == "sinusoid":
                raise UserError(f"--baseline={self.baseline} is for image datasets; sinusoid's pretrained "
                                "baseline is --pretrain_iterations=N --metatrain_iterations=0")
            if self.algorithm != "maml":
                raise UserError(f"--baseline={self.baseline} does no meta-training: drop "
                                f"--algorithm={self.algorithm}")
            if self.metatrain_iterations:
                raise UserError(f"--baseline={self.baseline} does no meta-training: add --metatrain_iterations=0")
        finite_lr = 0 < self.pretrain_lr < float("inf")
        if self.baseline == "pretrained" and (self.pretrain_batch_size <= 0 or not finite_lr):
            raise UserError("pretrain_batch_size and pretrain_lr must be positive, got "
                            f"{self.pretrain_batch_size} and {self.pretrain_lr}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)


@functools.lru_cache(maxsize=32)
def _validated(config: Config) -> Config:
    config._check()  # raises: a failed check is not cached, so it fails again the next time
    return config
