"""N-way K-shot tasks from any image-classification dataset of tensorflow-datasets: --datasource=tfds:NAME.

Every split TFDS has (train, test, ...) is pooled, then its classes are split into meta-train,
validation and test as a folder's are (--folder_split fractions, a fixed seed over the class
order), or by a community split named in --folder_split (`NAMED_SPLITS`: CIFAR-FS, FC100).
TFDS reads the dataset from --data_dir when it is prepared there, else from --cache_dir/tfds,
else downloads it there (the one step that needs a network). Images are resized and read as
grey or RGB as a folder's (`pixels.square`) and kept as one uint8 .npy in --cache_dir, read by
memory map.
"""

import collections
import contextlib
import json
import os
import re
import sys
import time
from typing import Dict, List, NamedTuple

import numpy as np
from PIL import Image

from maml_tf.datasets import folder_io, pixels
from maml_tf.datasets.folder import ClassImagesSampler, check_image_format, paper_network
from maml_tf.datasets.miniimagenet_io import temp_path
from maml_tf.errors import UserError

PREFIX = "tfds:"
PREP_VERSION = 1  # bump when the decode changes: every cache is rebuilt
DOWNLOAD_RETRIES = 2  # per file (TFDS's own: 10)
SUPERCLASS_FEATURE = "coarse_label"  # CIFAR-100's 20 superclasses (FC100 splits by them)
# Community class splits of CIFAR-100: validation and test classes (train: the rest), as in
# torchmeta's assets (tristandeleu/pytorch-meta, torchmeta/datasets/assets/cifar100/).
NAMED_SPLITS = {
    # CIFAR-FS: Bertinetto, Henriques, Torr, Vedaldi, ICLR 2019 (64/16/20 classes).
    "cifar-fs": {"by": "class", "sizes": (64, 16, 20), "val": (
        "beaver otter flatfish shark lamp television beetle butterfly sea camel cattle crab "
        "crocodile maple_tree motorcycle tractor").split(), "test": (
        "whale poppy rose sweet_pepper telephone bed table wardrobe leopard plain chimpanzee fox "
        "snail worm baby man woman bicycle pickup_truck rocket").split()},
    # FC100: Oreshkin, Rodriguez, Lacoste, NeurIPS 2018 (TADAM): 12/4/4 superclasses, 60/20/20 classes.
    "fc100": {"by": "superclass", "sizes": (60, 20, 20), "val": (
        "large_carnivores large_omnivores_and_herbivores non-insect_invertebrates "
        "small_mammals").split(), "test": (
        "aquatic_mammals insects medium_mammals people").split()},
}


def dataset_name(dataset: str) -> str:
    """'tfds:cifar100' -> 'cifar100' (a TFDS name, optionally with /config and :version)."""
    return dataset[len(PREFIX):]


def check_config(config):
    """The checks that need no data (Config.validate calls it, before TensorFlow loads)."""
    name = dataset_name(config.dataset)
    if not re.fullmatch(r"[a-z0-9_]+(/[\w.-]+)?(:[\d.*]+)?", name):
        raise UserError(f"--datasource={config.dataset}: give a tensorflow-datasets name after "
                        "'tfds:', such as tfds:cifar100 or tfds:caltech_birds2011")
    if config.folder_split not in NAMED_SPLITS:
        folder_io.parse_split(config.folder_split)
    check_image_format(config)
    if config.min_class_images:
        raise UserError("--min_class_images is for --datasource=folder")


def network_for(config) -> tuple:
    """The paper's network for the dataset's images as they are read (folder.paper_network):
    from the cached array's shape (read and cached now if it is not yet)."""
    shape = load(config).images.shape
    return paper_network(shape[1], shape[3])


def _builder(config):
    """The dataset's TFDS builder, prepared: in --data_dir, else in the cache (downloaded)."""
    import tensorflow_datasets as tfds

    name = dataset_name(config.dataset)
    cache = os.path.join(config.cache_dir or os.path.expanduser("~/.cache/maml_tf"), "tfds")
    try:
        for data_dir in (config.data_dir, cache):
            builder = tfds.builder(name, data_dir=data_dir)
            if builder.is_prepared():
                return builder
        print(f"tfds:{name} is not prepared under --data_dir={config.data_dir}: downloading it "
              f"into {cache}", file=sys.stderr, flush=True)
        with _fail_fast_offline():
            builder.download_and_prepare()
        return builder
    except tfds.core.registered.DatasetNotFoundError:
        raise UserError(f"tensorflow-datasets has no dataset {name!r} (tfds.list_builders() "
                        "lists them)") from None
    except Exception as err:  # noqa: BLE001  (a download's errors are many kinds; one line)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"tfds:{name} is not prepared under --data_dir={config.data_dir} or "
                        f"{cache}, and preparing it failed: {first} (without a network: `tfds build "
                        f"{name} --data_dir=DIR` on a machine with one, then --data_dir=DIR)") from None


@contextlib.contextmanager
def _fail_fast_offline():
    """A download that cannot connect fails within seconds, quietly: TFDS retries each file 10
    times with a doubling backoff and a warning per try (on a machine without network, 3.5
    minutes and some 40 warning lines before the one error, measured with tfds:mnist)."""
    import logging
    from tensorflow_datasets.core.download import downloader

    retries = getattr(downloader, "MAX_RETRIES", None)
    # Not restored: the download's other threads still log their retries after the first fails.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    if retries is not None:
        downloader.MAX_RETRIES = DOWNLOAD_RETRIES
    try:
        yield
    finally:
        if retries is not None:
            downloader.MAX_RETRIES = retries


class Examples(NamedTuple):
    """The pooled dataset, class after class."""
    images: np.ndarray  # uint8 [n, size, size, channels]
    names: List[str]  # class names, in label order
    counts: List[int]  # images per class
    superclasses: List[str]  # each class's superclass name ("" without SUPERCLASS_FEATURE)


def _keys(features):
    import tensorflow_datasets as tfds

    image = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    label = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)
             and k != SUPERCLASS_FEATURE]
    if not image or not label:
        raise UserError("tfds dataset has no image and class-label features: it is not an "
                        "image-classification dataset")
    return image[0], ("label" if "label" in label else label[0])


def _image_format(config, feature, first_sizes) -> tuple:
    """(side, channels): the config's, else the feature's fixed square side or the most common
    side of the first images, at most folder_io.MAX_AUTO_SIZE; the feature's channels."""
    shape, size = feature.shape, config.image_size
    if not size:
        fixed = shape[0] if shape[0] and shape[0] == shape[1] else None
        size = min(fixed or collections.Counter(first_sizes).most_common(1)[0][0],
                   folder_io.MAX_AUTO_SIZE)
    return size, config.channels or (1 if shape[-1] == 1 else 3)


def _read(builder, config) -> Examples:
    """Every example of every split, resized, grouped by class (in memory, then cached)."""
    import tensorflow_datasets as tfds

    features = builder.info.features
    image_key, label_key = _keys(features)
    splits = "+".join(sorted(builder.info.splits.keys()))
    dataset = builder.as_dataset(split=splits, shuffle_files=False)
    # Streamed: only the resized images are held, never the decoded originals.
    first_sizes = [max(r[image_key].shape[:2]) for r in tfds.as_numpy(dataset.take(1000))]
    if not first_sizes:
        raise UserError(f"{config.dataset} has no examples")
    size, channels = _image_format(config, features[image_key], first_sizes)
    names = list(features[label_key].names)
    by_class = [[] for _ in names]
    coarse = [""] * len(names)
    super_names = features[SUPERCLASS_FEATURE].names if SUPERCLASS_FEATURE in features else None
    for row in tfds.as_numpy(dataset):
        label = int(row[label_key])
        pixels_ = row[image_key]
        image = Image.fromarray(pixels_[..., 0] if pixels_.shape[-1] == 1 else pixels_)
        by_class[label].append(pixels.square(image, size, channels))
        if super_names is not None:
            coarse[label] = super_names[int(row[SUPERCLASS_FEATURE])]
    keep = [i for i, members in enumerate(by_class) if members]
    images = np.stack([x for i in keep for x in by_class[i]])
    return Examples(images, [names[i] for i in keep], [len(by_class[i]) for i in keep],
                    [coarse[i] for i in keep])


def load(config) -> Examples:
    """The pooled examples from the cache (a memory map), else read once through TFDS into it."""
    builder = _builder(config)
    stem = re.sub(r"[^\w.-]", "_", f"{builder.name}-{builder.version}-{config.image_size}px"
                                    f"{config.channels}c-v{PREP_VERSION}")
    folder = os.path.join(config.cache_dir, "tfds_arrays") if config.cache_dir else None
    if folder:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            with open(os.path.join(folder, stem + ".json")) as f:
                meta = json.load(f)
            return Examples(np.load(os.path.join(folder, stem + ".npy"), mmap_mode="r"),
                            meta["names"], meta["counts"], meta["superclasses"])
    t0 = time.time()
    examples = _read(builder, config)
    if not folder:
        return examples
    os.makedirs(folder, exist_ok=True)
    tmp = temp_path(os.path.join(folder, stem + ".npy"), os.getpid())
    np.save(tmp, examples.images)
    os.replace(tmp, os.path.join(folder, stem + ".npy"))
    _write_json(os.path.join(folder, stem + ".json"), examples._asdict(), skip="images")
    print(f"{config.dataset}: decoded {len(examples.images):,} images of {len(examples.names)} "
          f"classes in {time.time() - t0:.1f} s (cached in {folder})", file=sys.stderr, flush=True)
    return load(config)


def _write_json(path: str, record: dict, skip: str):
    """`record` without `skip` as JSON, atomically (the .npy beside it is whole once this is)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({k: v for k, v in record.items() if k != skip}, f)
    os.replace(tmp, path)


def named_split(examples: Examples, name: str) -> Dict[str, np.ndarray]:
    """Class indices of each split of the community split `name`; UserError if the dataset's
    classes are not the ones it names (it is defined for CIFAR-100)."""
    spec = NAMED_SPLITS[name]
    keys = examples.names if spec["by"] == "class" else examples.superclasses
    missing = sorted(set(spec["val"] + spec["test"]) - set(keys))
    if missing:
        raise UserError(f"--folder_split={name} is a split of CIFAR-100's {spec['by']}es; this "
                        f"dataset has no {spec['by']} {', '.join(missing[:4])}: use tfds:cifar100")
    where = {"val": set(spec["val"]), "test": set(spec["test"])}
    splits = {s: np.asarray([i for i, k in enumerate(keys) if k in members], np.int64)
              for s, members in where.items()}
    splits["train"] = np.asarray([i for i, k in enumerate(keys)
                                  if k not in where["val"] | where["test"]], np.int64)
    sizes = tuple(len(splits[s]) for s in folder_io.SPLITS)
    if sizes != spec["sizes"]:
        raise UserError(f"--folder_split={name} should give {spec['sizes']} classes, this dataset "
                        f"gives {sizes}")
    return splits


def make_sampler(config) -> ClassImagesSampler:
    check_config(config)
    examples = load(config)
    splits = (named_split(examples, config.folder_split) if config.folder_split in NAMED_SPLITS
              else folder_io.split_classes(examples.names, config.folder_split,
                                           f" of {config.dataset}"))
    return ClassImagesSampler(examples.images, examples.names, examples.counts, splits,
                              config.ways, config.dataset)
