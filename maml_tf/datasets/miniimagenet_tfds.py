"""A tensorflow-datasets builder `mini_imagenet` (manual download), and the reader maml_tf uses for it.

Importing this module registers the builder, so after
`import maml_tf.datasets.miniimagenet_tfds` a tfds user can call
`tfds.load("mini_imagenet", data_dir=..., download_and_prepare_kwargs={"download_config":
tfds.download.DownloadConfig(manual_dir=...)})`.
"""

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from maml_tf.datasets import miniimagenet_files
from maml_tf.datasets import miniimagenet_io as io
from maml_tf.errors import UserError

TFDS_SPLITS = {"train": "train", "val": "validation", "test": "test"}


class MiniImagenet(tfds.core.GeneratorBasedBuilder):
    """miniImageNet (Vinyals et al. 2016) with the Ravi & Larochelle class split, 84x84 RGB."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Ravi & Larochelle split: 64 train, 16 validation, 20 test classes."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
The miniImageNet images are derived from ImageNet and cannot be downloaded automatically.
Put into the manual_dir (default <data_dir>/downloads/manual/) ONE of:
  * mini-imagenet-cache-{train,val,test}.pkl (dicts with image_data uint8 [N,84,84,3] and
    class_dict wnid -> row indices);
  * {train,val,test}/<wnid>/<file>.jpg at 84x84 (the layout cbfinn/maml's proc_images.py
    writes; data/prepare_miniimagenet.py in maml_tf writes it from the raw images);
  * images/<file>.jpg (84x84) named as in {train,val,test}.csv, with those CSVs beside it.
The split CSVs (rows filename,label) of Ravi & Larochelle, if present in manual_dir, are
checked against the images.
"""

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        # tfds would look this file up through etils.epath, which imports the
        # importlib_resources package that tensorflow-datasets does not install.
        return epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                # PNG: lossless, so the pixels are exactly those of the source files.
                "image": tfds.features.Image(shape=io.IMAGE_SHAPE, encoding_format="png"),
                "label": tfds.features.Text(),  # the ImageNet wnid, e.g. n01532829
                "index": np.int64,  # position of the image within its class in the source
            }),
            supervised_keys=("image", "label"),
            homepage="https://github.com/twitter/meta-learning-lstm",
        )

    def _split_generators(self, dl_manager):
        manual_dir = str(dl_manager.manual_dir)
        generators = {}
        for split, tfds_name in TFDS_SPLITS.items():
            data = miniimagenet_files.load_from_root(manual_dir, split)
            if data is None:
                raise UserError(f"no miniImageNet {split} split in {manual_dir}:\n"
                                + self.MANUAL_DOWNLOAD_INSTRUCTIONS)
            generators[tfds_name] = self._generate_examples(data, split)
        return generators

    def _generate_examples(self, data: io.SplitImages, split: str):
        for c, name in enumerate(data.classes):
            for i in range(int(data.counts[c])):
                yield f"{split}/{name}/{i}", {"image": data.images[data.starts[c] + i],
                                              "label": name, "index": i}


def load_split(data_dir: str, split: str) -> io.SplitImages:
    """A split of a prepared `mini_imagenet` in `data_dir`, grouped by class in the source order."""
    builder = MiniImagenet(data_dir=data_dir)
    if not builder.is_prepared():
        raise UserError(f"{data_dir}/mini_imagenet is not a prepared tfds mini_imagenet "
                        f"(version {MiniImagenet.VERSION})")
    batch = tfds.as_numpy(builder.as_dataset(split=TFDS_SPLITS[split], batch_size=-1))
    labels = np.asarray([s.decode() for s in batch["label"]])
    order = np.lexsort((batch["index"], labels))  # by class, then source position
    classes, counts = np.unique(labels[order], return_counts=True)
    return io.from_groups(np.ascontiguousarray(batch["image"][order]), [str(c) for c in classes],
                          counts)
