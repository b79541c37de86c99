"""The command line's flags: the original code's names, defaults and meanings, then what maml_tf adds (main.py reads them)."""

from absl import flags

from maml_tf.experiment.config import CHOICES

DATA_ENV, CACHE_ENV, STORE_ENV = "MAML_TF_DATA_DIR", "MAML_TF_CACHE_DIR", "MAML_TF_RUN_STORE"

# The original's flags, names, defaults and meanings.
flags.DEFINE_string("datasource", "sinusoid", "sinusoid, omniglot, miniimagenet, folder (your own images: "
                    "--data_dir=ROOT with ROOT/<class>/<image> or ROOT/{train,val,test}/<class>/<image>), tfds:NAME "
                    "(an image-classification dataset of tensorflow-datasets, e.g. tfds:cifar100: read from --data_dir "
                    "if prepared there, else downloaded into --cache_dir), or 2dnavigation (RL: unset "
                    "flags take the paper's RL values: update_lr 0.1, meta_batch_size 20, 500 iterations, "
                    "40 test goals, 3 test steps)")
flags.DEFINE_integer("num_classes", 5, "number of classes per task (N-way classification)")
flags.DEFINE_string("baseline", None, "'oracle' (sinusoid: the network is told amplitude and phase); images: "
                    "'pretrained' (supervised pretraining over all meta-train classes for --pretrain_iterations "
                    "steps; --train=False fine-tunes it as --finetune says) or 'scratch' (--train=False: "
                    "fine-tunes a random initialisation); or None")
flags.DEFINE_integer("pretrain_iterations", 0, "iterations of joint training on all tasks (the pretrained baseline)")
flags.DEFINE_integer("metatrain_iterations", 15000, "meta-training iterations (paper: 70k sinusoid, 60k images)")
flags.DEFINE_integer("meta_batch_size", 25, "tasks per meta-update")
flags.DEFINE_float("meta_lr", 0.001, "outer (Adam) learning rate beta (MAML; Reptile's outer step is --meta_step)")
flags.DEFINE_integer("update_batch_size", 5, "K: support examples per class (per task for sinusoid)")
flags.DEFINE_float("update_lr", 1e-3, "inner step size alpha (classification: a step on the summed loss / K; Reptile: on the summed loss of the batch)")
flags.DEFINE_integer("num_updates", 1, "inner gradient steps during meta-training (Reptile: its inner iterations)")
flags.DEFINE_string("norm", "batch_norm", "batch_norm, layer_norm, or None")
flags.DEFINE_integer("num_filters", 64, "filters per conv layer (32 for miniimagenet, 64 for omniglot)")
flags.DEFINE_bool("conv", True, "convolutional network (False: the 256-128-64-64 fully connected net)")
flags.DEFINE_bool("max_pool", False, "max-pooling instead of strided convolutions")
flags.DEFINE_bool("stop_grad", False, "first-order MAML: no second derivatives in the meta-gradient")
flags.DEFINE_bool("log", True, "write TensorBoard summaries")
flags.DEFINE_string("logdir", "/tmp/data", "parent directory of the run directories")
flags.DEFINE_bool("resume", True, "resume training from the run's latest checkpoint if there is one (False: start over; refused where a run's checkpoints are kept)")
flags.DEFINE_bool("train", True, "True to train, False to evaluate a checkpoint")
flags.DEFINE_integer("test_iter", -1, "iteration of the checkpoint to evaluate (-1: the latest; "
                     "for --baseline=pretrained, its validation-chosen best, or its latest if it never validated)")
flags.DEFINE_bool("test_best", False, "evaluate the best-validation model (checkpoints/best) instead of --test_iter")
flags.DEFINE_integer("patience", 0, "stop training when meta-validation has not improved for N iterations (0: never)")
flags.DEFINE_string("run_store", None, f"folder of stored runs (e.g. results/runs): a run directory without a checkpoint starts from its stored copy (default: ${STORE_ENV})")
flags.DEFINE_bool("test_set", False, "evaluate on the meta-test split (False: meta-validation)")
flags.DEFINE_integer("train_update_batch_size", -1, "K used in training, to find the run when testing with another K (-1: same; Reptile: its train shots per class)")
flags.DEFINE_float("train_update_lr", -1, "alpha used in training, to find the run when testing with another alpha (-1: same)")
# Beyond the original.
flags.DEFINE_integer("test_num_updates", 10, "inner steps at evaluation; metrics are kept after those --record_steps names")
flags.DEFINE_string("record_steps", "auto", "inner steps a test evaluation (--train=False) records: auto (every step up to 10 steps, else 0, every 10th and the last), all, or a list like 0,5,50; the steps not recorded are still taken, only not predicted")
flags.DEFINE_integer("num_query", -1, "query examples per class (-1: K; 15 in miniimagenet training, as the paper); with --train=False the test tasks' count (e.g. 15, as MAML++ tests: eval_..._queries<Q> files, which the reports never read as a row; a Reptile run is tested with the count it validated with, which -1 takes from the run)")
flags.DEFINE_enum("algorithm", "maml", list(CHOICES["algorithm"]), "meta-learning algorithm (--stop_grad: first-order MAML)")
flags.DEFINE_integer("inner_batch_size", 0, "Reptile: support examples per inner step, taken in turn from the shuffled support set (0: all; the paper: 10 for 5-way, 20 for 20-way)")
flags.DEFINE_enum("inner_optimizer", "sgd", list(CHOICES["inner_optimizer"]), "Reptile: inner optimizer with step size --update_lr; adam: beta1=0, beta2=0.999, eps=1e-8 as the Reptile paper, its second moments and step count carried over every task of training (only the weights are reset), as the paper's code")
flags.DEFINE_integer("eval_inner_batch_size", 0, "Reptile: support examples per inner step at evaluation (0: all; the paper: 5 for 5-way, 10 for 20-way)")
flags.DEFINE_bool("transductive", True, "evaluation: predict all query examples in one batch, batch norm sharing their statistics (MAML's and the Reptile paper's 'transductive'); False: each query example in a batch with the support set only")
flags.DEFINE_float("meta_step", 1.0, "Reptile: outer step size epsilon at the first iteration (theta += epsilon * (mean W - theta))")
flags.DEFINE_float("meta_step_final", 0.0, "Reptile: epsilon at the last iteration, reached linearly over --metatrain_iterations")
flags.DEFINE_integer("seed", 0, "seed of the model initialisation and the training tasks")
flags.DEFINE_integer("eval_seed", 1234, "seed of the evaluation tasks (fixed so every model sees the same tasks)")
flags.DEFINE_integer("num_test_tasks", 600, "tasks in an evaluation (the paper: 600)")
flags.DEFINE_integer("val_interval", 500, "meta-validate every N training iterations (0: never)")
flags.DEFINE_integer("num_val_tasks", 100, "tasks per meta-validation during training")
flags.DEFINE_integer("checkpoint_interval", 1000, "save a checkpoint every N iterations (and at the end)")
flags.DEFINE_integer("print_interval", 100, "print and log training metrics every N iterations")
flags.DEFINE_float("grad_clip", -1, "clip meta-gradients to +-this (0: off; -1: 10 for miniimagenet as the original, else off)")
flags.DEFINE_string("run_name", None, "run directory under --logdir (default: built from the run's settings)")
flags.DEFINE_bool("print_run_dir", False, "print the run directory these flags name (--logdir/<run name>) and exit: nothing is trained (a folder's or TFDS dataset's images are looked at only to choose the network, when neither --max_pool nor --num_filters is given)")
flags.DEFINE_string("data_dir", None, f"dataset root (default: ${DATA_ENV}, else ./data)")
flags.DEFINE_string("eval_dir", None, "with --train=False: write the evaluation's eval_*.json/csv here instead of into the run directory (e.g. a read-only one)")
flags.DEFINE_string("cache_dir", None, f"writable cache for prepared data (default: ${CACHE_ENV}, else ~/.cache/maml_tf)")
flags.DEFINE_enum("data_source", "files", list(CHOICES["data_source"]), "files: the official archives under --data_dir; tfds: tensorflow-datasets (omniglot)")
flags.DEFINE_enum("omniglot_split", "random", list(CHOICES["omniglot_split"]), "random: the original's seeded 1100/100/423 characters; alphabets: background alphabets train, evaluation alphabets test; within_alphabet: the same, each task from one alphabet")
flags.DEFINE_enum("omniglot_resize", "original", list(CHOICES["omniglot_resize"]), "original: the pixels the original's Pillow call produced (nearest, binary); lanczos: a real Lanczos resize")
flags.DEFINE_string("folder_split", "0.64,0.16,0.2", "--datasource=folder with ROOT/<class>/ or tfds:NAME: train,val,test fractions of the classes (split by a fixed seed over the sorted class names, or TFDS's class order; kept in the run's config.json); for tfds:cifar100 also a community split by name: cifar-fs (Bertinetto et al. 2019, 64/16/20 classes) or fc100 (Oreshkin et al. 2018, 12/4/4 superclasses)")
flags.DEFINE_integer("image_size", 0, "--datasource=folder or tfds:NAME: side the images are resized to (0: their most common size, at most 84)")
flags.DEFINE_integer("min_class_images", 0, "--datasource=folder: leave out the classes with fewer images than this (one line names them), before the classes are split; 0: keep every class (one too small for a task is an error naming it)")
flags.DEFINE_integer("channels", 0, "--datasource=folder or tfds:NAME: 1 (grey) or 3 (RGB); 0: grey if every image is grey, else RGB")
flags.DEFINE_enum("onednn", "auto", list(CHOICES["onednn"]), "CPU kernels: oneDNN (on) or Eigen (off); auto: Eigen when a conv call sees <= 10 images without max-pool (Omniglot 5-way 1-query), where it is faster, else oneDNN")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the meta-step (for GPUs; on CPU it is ~8x slower, results/performance.md)")
flags.DEFINE_integer("intra_op_threads", 1, "CPU threads per TensorFlow op; the meta-batch's tasks already run in parallel on the cores, so 1 is fastest (measured); 0: TensorFlow's default (all cores)")
flags.DEFINE_enum("strategy", "default", list(CHOICES["strategy"]), "tf.distribute strategy; the meta-batch is split evenly over its replicas: default (one device), mirrored (every local GPU; without GPUs --num_cpu_devices logical CPUs), multi_worker (several machines, from the TF_CONFIG environment variable), tpu (TPU_NAME)")
flags.DEFINE_integer("num_cpu_devices", 2, "--strategy=mirrored on a machine without GPUs: logical CPU devices, one replica each (for testing)")
# Transfer baselines (--baseline=pretrained / scratch).
flags.DEFINE_enum("finetune", "all", list(CHOICES["finetune"]), "baselines at test time, on a fresh N-way head: all (SGD on every weight but the norm offsets, as MAML's inner loop), head (features frozen), nearest (1-NN in feature space), cosine (cosine classifier from the class means)")
flags.DEFINE_enum("finetune_bn", "batch", list(CHOICES["finetune_bn"]), "baselines' batch norm at test time: batch statistics (as MAML) or the pretrained moving statistics")
flags.DEFINE_integer("pretrain_batch_size", 64, "images per supervised pretraining step (--baseline=pretrained)")
flags.DEFINE_float("pretrain_lr", 0.1, "step size of the supervised pretraining's SGD with momentum 0.9 (--baseline=pretrained)")
# MAML's successors, each off by default (maml_tf/variants.py).
flags.DEFINE_bool("anil", False, "ANIL (Raghu, Raghu, Bengio, Vinyals, ICLR 2020): the inner loop adapts only the head (the final dense layer), at training and evaluation; the body is learned by the outer loop only")
flags.DEFINE_enum("learned_inner_lr", "none", list(CHOICES["learned_inner_lr"]), "learned inner step sizes, started at --update_lr and meta-learned with the weights by the outer Adam: per_param: Meta-SGD (Li, Zhou, Chen, Li 2017), one per parameter; per_layer_step: MAML++'s LSLR (Antoniou, Edwards, Storkey, ICLR 2019), one per weight tensor and inner step (evaluation steps beyond --num_updates keep the last step's); none: the fixed --update_lr")
flags.DEFINE_bool("multi_step_loss", False, "MAML++'s multi-step loss (MSL): the meta-loss weighs the query loss after every inner step, the weights annealed towards the last step per 500-iteration epoch over --msl_anneal_iterations, then the last step's alone")
flags.DEFINE_integer("msl_anneal_iterations", -1, "how long --multi_step_loss anneals its step weights (MAML++, Antoniou, Edwards, Storkey, ICLR 2019), in iterations, a multiple of its 500-iteration epoch (-1: its code's, 10 epochs = 5000 for Omniglot, 15 epochs = 7500 for miniimagenet)")
flags.DEFINE_integer("first_order_iterations", 0, "MAML++'s derivative-order annealing (Antoniou, Edwards, Storkey, ICLR 2019): first-order meta-gradients for the first N iterations, then second order (0: off, as its released configs)")
flags.DEFINE_bool("cosine_meta_lr", False, "MAML++'s cosine annealing of the meta learning rate, from --meta_lr to --min_meta_lr over --metatrain_iterations, stepped every 500-iteration epoch")
flags.DEFINE_float("min_meta_lr", 1e-5, "the meta learning rate --cosine_meta_lr ends at (MAML++: 1e-5)")
flags.DEFINE_bool("per_step_bn_weights", False, "MAML++'s per-step batch-norm weights (BNWB): inner steps 1..N-1 get their own copies of the batch-norm parameters (step 0 keeps the model's), learned by the outer loop; a forward pass of inner step i uses step i's (needs --norm=batch_norm and --num_updates >= 2; per-step running statistics, BNRS, would change nothing: batch norm always uses the batch's statistics, in MAML++'s code too)")
flags.DEFINE_bool("maml_plus_plus", False, "MAML++ (Antoniou, Edwards, Storkey, ICLR 2019) with its released configs' settings: --learned_inner_lr=per_layer_step --cosine_meta_lr, and with --num_updates >= 2 --multi_step_loss and (with --norm=batch_norm) --per_step_bn_weights; any of those flags given explicitly wins (an ablation: --maml_plus_plus --nomulti_step_loss)")
# Reinforcement learning (--datasource=2dnavigation), names as the paper's RL code.
# Read by --datasource=2dnavigation only (rl/flags_map.NOT_READ is the other way round).
RL_ONLY = ("fast_batch_size", "max_path_length", "discount", "max_kl", "cg_iters", "later_update_lr")
flags.DEFINE_integer("fast_batch_size", 20, "RL: trajectories per task for each policy-gradient step")
flags.DEFINE_integer("max_path_length", 100, "RL: horizon (steps per trajectory)")
flags.DEFINE_float("discount", 0.99, "RL: discount of the returns")
flags.DEFINE_float("max_kl", 0.01, "RL: TRPO's KL limit per meta-update")
flags.DEFINE_integer("cg_iters", 10, "RL: conjugate-gradient iterations per TRPO step")
flags.DEFINE_float("later_update_lr", 0.05, "RL: step size of test-time steps after the first (--update_lr)")
