"""--datasource=tfds:NAME on datasets built here (no network): prepared by TFDS into the cache, pooled, split by class (fractions, or CIFAR-FS / FC100 by name), cached, meta-trained on."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from maml_tf import datasets
from maml_tf.errors import UserError
from maml_tf.experiment.config import Config
from folder_helpers import class_image

# CIFAR-100's 20 superclasses and their 5 classes each (the dataset's own grouping).
CIFAR = {
    "aquatic_mammals": "beaver dolphin otter seal whale",
    "fish": "aquarium_fish flatfish ray shark trout",
    "flowers": "orchid poppy rose sunflower tulip",
    "food_containers": "bottle bowl can cup plate",
    "fruit_and_vegetables": "apple mushroom orange pear sweet_pepper",
    "household_electrical_devices": "clock keyboard lamp telephone television",
    "household_furniture": "bed chair couch table wardrobe",
    "insects": "bee beetle butterfly caterpillar cockroach",
    "large_carnivores": "bear leopard lion tiger wolf",
    "large_man-made_outdoor_things": "bridge castle house road skyscraper",
    "large_natural_outdoor_scenes": "cloud forest mountain plain sea",
    "large_omnivores_and_herbivores": "camel cattle chimpanzee elephant kangaroo",
    "medium_mammals": "fox porcupine possum raccoon skunk",
    "non-insect_invertebrates": "crab lobster snail spider worm",
    "people": "baby boy girl man woman",
    "reptiles": "crocodile dinosaur lizard snake turtle",
    "small_mammals": "hamster mouse rabbit shrew squirrel",
    "trees": "maple_tree oak_tree palm_tree pine_tree willow_tree",
    "vehicles_1": "bicycle bus motorcycle pickup_truck train",
    "vehicles_2": "lawn_mower rocket streetcar tank tractor",
}
FINE = sorted(c for members in CIFAR.values() for c in members.split())
COARSE = sorted(CIFAR)


class StripesToy(tfds.core.GeneratorBasedBuilder):
    """12 classes of coloured stripes, 6 images each of mixed sizes, in a train and a test split."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(names=[f"stripes{c:02d}" for c in range(12)])}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(range(4)), "test": self._generate_examples(range(4, 6))}

    def _generate_examples(self, images):
        sizes = [(20, 20), (24, 24), (20, 20), (30, 18), (20, 20), (16, 16)]
        for c in range(12):
            for i in images:
                yield f"{c}-{i}", {"image": np.asarray(class_image(c, i, sizes[i])), "label": c}


class CifarNamesToy(tfds.core.GeneratorBasedBuilder):
    """CIFAR-100's class and superclass names, two 8x8 images per class."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8, 8, 3)),
            "label": tfds.features.ClassLabel(names=FINE),
            "coarse_label": tfds.features.ClassLabel(names=COARSE)}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        coarse = {c: s for s, members in CIFAR.items() for c in members.split()}
        for label, name in enumerate(FINE):
            for i in range(2):
                yield f"{name}-{i}", {"image": np.full((8, 8, 3), label + i, np.uint8), "label": label,
                                      "coarse_label": COARSE.index(coarse[name])}


class UnreachableToy(StripesToy):
    """A dataset whose one file is on a host that does not resolve."""

    def _split_generators(self, dl_manager):
        dl_manager.download("https://no-such-host.invalid/unreachable_toy.zip")
        return super()._split_generators(dl_manager)


def toy_config(tmp_path, name="stripes_toy", **changes):
    base = dict(dataset=f"tfds:{name}", data_dir=str(tmp_path / "nothing_here"),
                cache_dir=str(tmp_path / "cache"), ways=3, shots=1, queries=1, eval_shots=1,
                eval_queries=1, num_filters=8, meta_batch_size=4, inner_lr=0.4, eval_inner_lr=0.4,
                metatrain_iterations=30, val_interval=30, val_tasks=20, eval_tasks=20,
                eval_batch_size=10, eval_inner_steps=3, checkpoint_interval=30, print_interval=10,
                log=False, folder_split="0.5,0.25,0.25")
    return Config(**{**base, **changes}).validate()


def test_pooled_split_by_class_resized_and_cached(tmp_path, capsys):
    config = toy_config(tmp_path)
    sampler = datasets.get_sampler(config)
    assert "downloading it into" in capsys.readouterr().err  # prepared into the cache, locally
    assert sampler.input_shape == (20, 20, 3)  # the most common size
    names = {s: sampler.split(s).classes for s in ("train", "val", "test")}
    assert sorted(sum(map(list, names.values()), [])) == [f"stripes{c:02d}" for c in range(12)]
    assert [len(v) for v in names.values()] == [6, 3, 3]
    assert list(sampler.split("train").counts) == [6] * 6  # both TFDS splits pooled
    cached = os.listdir(tmp_path / "cache" / "tfds_arrays")
    assert sorted(f.rsplit(".", 1)[1] for f in cached) == ["json", "npy"]
    again = datasets.get_sampler(config)  # the cache's memory map, not a second decode
    assert isinstance(again.images, np.memmap)
    np.testing.assert_array_equal(np.asarray(again.images), np.asarray(sampler.images))
    task = sampler.sample("val", 2, 1, 1, np.random.default_rng(0))
    assert task.support_x.shape == (2, 3, 20, 20, 3) and task.support_x.max() <= 1.0


def test_the_network_follows_the_images(tmp_path):
    from maml_tf.datasets import choose_network

    small = choose_network(toy_config(tmp_path))  # 20 px: the paper's Omniglot net
    large = choose_network(toy_config(tmp_path, image_size=64))  # RGB, 64 px: its MiniImageNet net
    assert (small.max_pool, small.num_filters, large.max_pool, large.num_filters) == (False, 64, True, 32)


def test_meta_training_learns(tmp_path):
    from maml_tf.experiment import train

    result = train.train_and_evaluate(toy_config(tmp_path), str(tmp_path / "run"))
    post = result["accuracy"][-1] if isinstance(result["accuracy"], list) else result["accuracy"]
    assert post > 1 / 3 + 0.15, result
    assert os.listdir(tmp_path / "run")  # named tfds-stripes_toy... under --logdir by main


@pytest.mark.parametrize("split, sizes, where", [
    ("cifar-fs", (64, 16, 20), {"val": ["beaver", "otter"], "test": ["whale", "rocket"]}),
    ("fc100", (60, 20, 20), {"val": ["bear", "hamster"], "test": ["dolphin", "woman"]}),
])
def test_community_splits_by_name(tmp_path, split, sizes, where):
    sampler = datasets.get_sampler(toy_config(tmp_path, "cifar_names_toy", folder_split=split,
                                              image_size=8, eval_tasks=5, val_tasks=5))
    got = {s: sampler.split(s).classes for s in ("train", "val", "test")}
    assert tuple(len(got[s]) for s in ("train", "val", "test")) == sizes
    for s, members in where.items():
        assert set(members) <= set(got[s])


def test_bad_names_one_line(tmp_path):
    with pytest.raises(UserError, match="no dataset 'no_such_dataset_xyz'"):
        datasets.get_sampler(toy_config(tmp_path, "no_such_dataset_xyz"))
    with pytest.raises(UserError, match="split of CIFAR-100"):  # a named split of another dataset
        datasets.get_sampler(toy_config(tmp_path, folder_split="cifar-fs"))
    with pytest.raises(UserError, match="tensorflow-datasets name"):
        toy_config(tmp_path, "Bad Name!")


def test_a_download_without_network_fails_fast_in_one_line(tmp_path, caplog):
    from tensorflow_datasets.core.download import downloader
    retries = downloader.MAX_RETRIES
    message = str(pytest.raises(UserError, datasets.get_sampler,
                                toy_config(tmp_path, "unreachable_toy")).value)
    assert "\n" not in message and "no-such-host.invalid" in message and "tfds build" in message
    assert downloader.MAX_RETRIES == retries  # TFDS's own retries again for the caller's downloads
    assert not [r for r in caplog.records if "Retrying" in r.getMessage()]  # TFDS: 10 per file
