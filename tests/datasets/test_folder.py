"""--datasource=folder: a researcher's own class-per-folder images, split, decoded, cached,
meta-trained on, and its bad inputs."""

import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from maml_tf import datasets
from maml_tf.datasets import folder_io, omniglot_data
from maml_tf.errors import UserError
from maml_tf.experiment.config import Config
from maml_tf.experiment.run_id import IDENTITY_FIELDS, run_name
from folder_helpers import class_image, write_tree

def config(root, cache, **changes):
    base = dict(dataset="folder", data_dir=str(root), cache_dir=str(cache), ways=3, shots=1,
                queries=1, eval_shots=1, eval_queries=1, num_filters=8, meta_batch_size=4,
                inner_lr=0.4, eval_inner_lr=0.4, metatrain_iterations=30, val_interval=30,
                val_tasks=20, eval_tasks=20, eval_batch_size=10, eval_inner_steps=3,
                checkpoint_interval=30, print_interval=10, log=False,
                folder_split="0.5,0.25,0.25")
    return Config(**{**base, **changes})


def one_line_error(fn, *words):
    with pytest.raises(UserError) as err:
        fn()
    message = str(err.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


def test_split_is_seeded_disjoint_and_complete(tmp_path):
    root = write_tree(tmp_path / "data")
    a = folder_io.list_folder(root, "0.64,0.16,0.2")
    b = folder_io.list_folder(root, "0.64,0.16,0.2")
    sizes = {s: len(v) for s, v in a.splits.items()}
    assert sizes == {"train": 8, "val": 2, "test": 2}
    for s in folder_io.SPLITS:
        np.testing.assert_array_equal(a.splits[s], b.splits[s])
    members = np.concatenate(list(a.splits.values()))
    assert sorted(members.tolist()) == list(range(12))  # disjoint and covering
    assert folder_io.split_classes([f"class{c:02d}" for c in range(12)], "0.64,0.16,0.2")["val"].tolist() \
        == a.splits["val"].tolist()  # a function of the sorted names and the fractions only
    assert {s: len(v) for s, v in folder_io.list_folder(root, "0.5,0.25,0.25").splits.items()} == \
        {"train": 6, "val": 3, "test": 3}
    assert {"folder_split", "image_size", "channels"} <= set(IDENTITY_FIELDS)


def test_images_decoded_cached_and_scaled(tmp_path):
    root = write_tree(tmp_path / "data")
    cfg = config(root, tmp_path / "cache")
    sampler = datasets.get_sampler(cfg.validate())
    assert sampler.input_shape == (20, 20, 3)  # the most common size; RGB images
    assert isinstance(sampler.images, np.memmap) and sampler.images.dtype == np.uint8
    cached = [f for f in os.listdir(tmp_path / "cache" / "folder") if f.endswith(".npy")]
    assert len(cached) == 1 and not any(f.startswith(".") for f in cached)
    task = sampler.sample("train", 2, 1, 2, np.random.default_rng(0))
    assert task.support_x.shape == (2, 3, 20, 20, 3) and task.query_x.shape == (2, 6, 20, 20, 3)
    assert task.support_x.dtype == np.float32
    assert 0.0 <= task.support_x.min() and task.support_x.max() <= 1.0 and task.support_x.max() > 0.5
    first = Image.open(os.path.join(root, "class00", "0.png")).convert("RGB")
    np.testing.assert_array_equal(sampler.images[0], np.asarray(first))  # 20x20: not resized
    again = datasets.get_sampler(cfg)  # the cache, not a decode
    np.testing.assert_array_equal(np.asarray(again.images), np.asarray(sampler.images))
    grey = datasets.get_sampler(cfg.replace(image_size=12, channels=1))
    assert grey.input_shape == (12, 12, 1)
    assert sorted(os.listdir(tmp_path / "cache" / "folder")).count(cached[0]) == 1


def test_a_class_name_that_is_not_utf8_is_read(tmp_path):
    """Latin-1 names (a zip made on Windows) stopped the cache's fingerprint with a traceback."""
    root = write_tree(tmp_path / "data")
    os.rename(os.path.join(root, "class05"), os.path.join(os.fsencode(root), b"caf\xe9"))
    sampler = datasets.get_sampler(config(root, tmp_path / "cache").validate())
    assert sampler.images.shape[0] == 12 * 6 and sampler.images.dtype == np.uint8


def test_presplit_layout_and_skipped_files(tmp_path, capsys):
    split = ["train"] * 6 + ["val"] * 3 + ["test"] * 3
    root = write_tree(tmp_path / "data", split=split)
    (tmp_path / "data" / "train" / "class00" / "notes.txt").write_text("not an image")
    (tmp_path / "data" / "train" / "class00" / ".DS_Store").write_bytes(b"\0\1")
    os.makedirs(tmp_path / "data" / "val" / ".hidden_class")
    os.makedirs(tmp_path / "data" / "train" / "class01" / "extra")  # its images are not the class's
    class_image(1, 9, (20, 20)).save(tmp_path / "data" / "train" / "class01" / "extra" / "9.png")
    listing = folder_io.list_folder(root, "0.64,0.16,0.2")  # the fractions do not apply
    names = {s: [listing.classes[i].name for i in idx] for s, idx in listing.splits.items()}
    assert names["val"] == ["val/class06", "val/class07", "val/class08"]
    assert len(listing.classes[0].files) == 6
    assert "skipped 3 hidden or non-image files, broken links or sub-folders" in capsys.readouterr().err
    # Fractions asked for on a folder that is already split would be ignored: refused instead.
    one_line_error(lambda: folder_io.list_folder(root, "0.5,0.25,0.25"), "--folder_split=0.5,0.25,0.25",
                   "does not apply", "leave --folder_split out")
    assert Config().folder_split == folder_io.DEFAULT_SPLIT  # the refusal's "default" is the flag's
    os.makedirs(tmp_path / "data" / "test" / "class06")
    one_line_error(lambda: folder_io.list_folder(root, "0.64,0.16,0.2"), "class06", "disjoint")
    os.makedirs(tmp_path / "data" / "other")
    one_line_error(lambda: folder_io.list_folder(root, "0.64,0.16,0.2"), "also other")



def test_what_a_folder_holds_besides_class_images_is_counted_or_refused(tmp_path, capsys):
    """Broken links and files beside the class folders were dropped without a word; a scan without
    an extension was read by classify but not by training; misnamed split folders were misreported."""
    root = write_tree(tmp_path / "data")
    os.symlink(tmp_path / "nowhere.png", tmp_path / "data" / "class02" / "9.png")
    class_image(0, 9, (20, 20)).save(tmp_path / "data" / "stray.png")
    class_image(3, 9, (20, 20)).save(tmp_path / "data" / "class03" / "scan_0009", format="PNG")
    listing = folder_io.list_folder(root, "0.5,0.25,0.25")
    assert [len(c.files) for c in listing.classes][2:4] == [6, 7]
    assert "skipped 2 hidden or non-image files, broken links or sub-folders" in capsys.readouterr().err
    for names, said in ((["train", "test", "apple"], "has split folders (test, train) but not val and also apple"),
                        (["Train", "Val", "Test"], "has folders Test, Train, Val: split folders are named")):
        other = tmp_path / "_".join(names)
        for name in names:
            write_tree(other / name, classes=3)
        one_line_error(lambda: folder_io.list_folder(str(other), folder_io.DEFAULT_SPLIT), said)
    pre = tmp_path / "pre"
    for split, name in (("train", "Cat"), ("val", "dog"), ("test", "cat")):
        class_image(0, 0, (20, 20)).save(_made(pre / split / name) / "0.png")
    one_line_error(lambda: folder_io.list_folder(str(pre), folder_io.DEFAULT_SPLIT), "class cat is in more")


def _made(path):
    os.makedirs(path, exist_ok=True)
    return path


def test_meta_training_learns(tmp_path):
    from maml_tf.experiment import train

    root = write_tree(tmp_path / "data")
    cfg = config(root, tmp_path / "cache")
    result = train.train_and_evaluate(cfg, str(tmp_path / "run"))
    chance = 1 / cfg.ways
    post = result["accuracy"][-1] if isinstance(result["accuracy"], list) else result["accuracy"]
    assert post > chance + 0.15, result
    import json

    saved = json.load(open(tmp_path / "run" / "config.json"))
    assert saved["folder_split"] == "0.5,0.25,0.25" and saved["dataset"] == "folder"
    with pytest.raises(UserError, match="folder_split"):  # a resume with another split
        train.train_and_evaluate(cfg.replace(folder_split="0.6,0.2,0.2"), str(tmp_path / "run"))
    recorded = json.load(open(tmp_path / "run" / "classes.json"))
    assert [len(recorded[s]) for s in ("train", "val", "test")] == [6, 3, 3]
    assert recorded.pop("input_shape") == [20, 20, 3]  # the images' most common size, RGB
    assert sorted(sum(recorded.values(), [])) == sorted(os.listdir(root))


def test_a_class_or_image_size_changed_after_training_is_refused_not_split_anew(tmp_path):
    from maml_tf.experiment import evaluate, train

    root = write_tree(tmp_path / "data")
    cfg = config(root, tmp_path / "cache", metatrain_iterations=2, val_interval=0, eval_tasks=4)
    run = str(tmp_path / "run")
    train.train_and_evaluate(cfg, run)
    write_tree(tmp_path / "more", classes=1)
    os.rename(tmp_path / "more" / "class00", tmp_path / "data" / "a_new")  # sorts first
    for attempt in (lambda: evaluate.evaluate_checkpoint(cfg, run),
                    lambda: train.train_and_evaluate(cfg.replace(metatrain_iterations=4), run)):
        one_line_error(attempt, "was trained on other classes than the data holds now (added: a_new",
                       "in another split: ")  # the split moved classes the run had trained on
    os.rename(tmp_path / "data" / "a_new", tmp_path / "more" / "a_new")
    assert evaluate.evaluate_checkpoint(cfg, run)["iteration"] == 2
    # images of another size, now the most common: the run's 20 px would silently become 24 px
    added = [os.path.join(root, f"class{c:02d}", f"big{i}.png") for c in range(12) for i in range(4)]
    for path in added:
        class_image(0, 0, (24, 24)).save(path)
    for attempt in (lambda: evaluate.evaluate_checkpoint(cfg, run),
                    lambda: train.train_and_evaluate(cfg.replace(metatrain_iterations=4), run)):
        one_line_error(attempt, "was trained on images read at 20x20x3, the data now reads at 24x24x3")
    for path in added:
        os.remove(path)
    assert evaluate.evaluate_checkpoint(cfg, run)["iteration"] == 2
    # grey images: said before the restore, whose own error would blame the checkpoints
    for c in range(12):
        for i in range(6):
            path = os.path.join(root, f"class{c:02d}", f"{i}.png")
            Image.open(path).convert("L").save(path)
    one_line_error(lambda: train.train_and_evaluate(cfg.replace(metatrain_iterations=4), run),
                   "read at 20x20x3, the data now reads at 20x20x1", "with --image_size and --channels given")


def test_bad_inputs_one_line(tmp_path, capsys):
    cache = tmp_path / "cache"
    root = write_tree(tmp_path / "data")
    cfg = config(root, cache)
    # a split with fewer classes than ways: the default split leaves 2 val classes
    one_line_error(lambda: datasets.check_task_sizes(cfg.replace(folder_split="0.64,0.16,0.2"),
                                                     [("val", 1, 1)]), "val split has 2 classes")
    one_line_error(lambda: cfg.replace(folder_split="1,0,0").validate(), "val split empty")
    one_line_error(lambda: cfg.replace(folder_split="0.9,0.05,0.05").validate() and
                   datasets.check_task_sizes(cfg.replace(folder_split="0.9,0.05,0.05"), [("train", 1, 1)]),
                   "leaves the")
    one_line_error(lambda: cfg.replace(folder_split="a,b").validate(), "three")
    one_line_error(lambda: cfg.replace(channels=2).validate(), "channels")
    one_line_error(lambda: Config(dataset="omniglot", image_size=28).validate(), "image_size")
    # a class with fewer images than shots + queries, named with its count
    for i in range(3, 6):
        os.remove(os.path.join(root, "class05", f"{i}.png"))
    one_line_error(lambda: datasets.check_task_sizes(cfg.replace(shots=2, queries=2), [("train", 2, 2)]),
                   "class05", "has 3 images", "--min_class_images=4")
    # ... which --min_class_images leaves out, before the split, with one line naming it
    dropped = folder_io.list_folder(root, cfg.folder_split, 4)
    assert "class05" not in [c.name for c in dropped.classes] and len(dropped.classes) == 11
    assert "left out 1 of 12 classes" in capsys.readouterr().err
    datasets.check_task_sizes(cfg.replace(shots=2, queries=2, min_class_images=4), [("train", 2, 2)])
    one_line_error(lambda: cfg.replace(min_class_images=-1).validate(), "min_class_images")
    # an unreadable image and a zero-byte one, named
    (tmp_path / "data" / "class01" / "broken.png").write_bytes(b"not a png at all")
    one_line_error(lambda: datasets.get_sampler(cfg), "broken.png")
    (tmp_path / "data" / "class01" / "broken.png").write_bytes(b"")
    one_line_error(lambda: datasets.check_task_sizes(cfg, [("train", 1, 1)]), "broken.png", "zero-byte")
    # a folder without class sub-folders
    flat = tmp_path / "flat"
    os.makedirs(flat)
    class_image(0, 0, (20, 20)).save(flat / "a.png")
    one_line_error(lambda: datasets.check_task_sizes(cfg.replace(data_dir=str(flat)), [("train", 1, 1)]),
                   "no class sub-folders")
    one_line_error(lambda: datasets.get_sampler(cfg.replace(data_dir=str(tmp_path / "none"))),
                   "not a folder")


def test_omniglot_in_folder_layout_gives_the_omniglot_images(small_zips, tmp_path):
    """Characters 1-6 and 965-968 of the real zips, unpacked into ROOT/<character>/<png>, read at
    28 px grey: the omniglot reader's pixels (its Lanczos resize; ink = 255 there, 0 here as in
    the PNGs). The 'original' resize is Pillow's nearest on the 1-bit image, which a general
    folder reader (grey levels, then Lanczos) does not do."""
    root = tmp_path / "omniglot_folder"
    zips = os.path.join(small_zips, "omniglot")
    for name in omniglot_data.ZIPS:
        with zipfile.ZipFile(os.path.join(zips, name)) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".png"):
                    char_id = info.filename.rsplit("/", 1)[1][:4]
                    os.makedirs(root / char_id, exist_ok=True)
                    (root / char_id / info.filename.rsplit("/", 1)[1]).write_bytes(archive.read(info))
    expected = omniglot_data.assemble(omniglot_data.read_zips(zips), "lanczos").images  # [10, 20, 28, 28]
    cfg = config(root, tmp_path / "cache", image_size=28, folder_split="0.6,0.2,0.2")
    sampler = datasets.get_sampler(cfg)
    assert sampler.input_shape == (28, 28, 1)  # 1-bit PNGs: grey
    got = 255 - np.asarray(sampler.images)[..., 0].reshape(10, 20, 28, 28)
    for c in range(10):  # drawings: omniglot orders them by content, the folder by file name
        key = lambda a: a.tobytes()  # noqa: E731
        assert sorted(map(key, got[c])) == sorted(map(key, expected[c]))


def test_real_miniimagenet_in_folder_layout_gives_the_same_arrays(tmp_path):
    """One class of each split of the real miniImageNet (its first 40 JPEGs), linked into the
    split layout: the folder reader's arrays are the miniimagenet reader's."""
    source = os.path.join(os.environ.get("MAML_TF_DATA_DIR", ""), "miniimagenet")
    if not os.path.isdir(os.path.join(source, "train")):
        pytest.skip("real miniImageNet not found under $MAML_TF_DATA_DIR/miniimagenet")
    from maml_tf.datasets import miniimagenet_io

    paths = []
    for split in folder_io.SPLITS:
        wnid = sorted(os.listdir(os.path.join(source, split)))[0]
        os.makedirs(tmp_path / "mini" / split / wnid)
        for name in sorted(os.listdir(os.path.join(source, split, wnid)))[:40]:
            paths.append(os.path.join(source, split, wnid, name))
            os.symlink(paths[-1], tmp_path / "mini" / split / wnid / name)
    cfg = config(tmp_path / "mini", tmp_path / "cache", ways=1, folder_split=folder_io.DEFAULT_SPLIT)
    sampler = datasets.get_sampler(cfg)
    assert sampler.input_shape == (84, 84, 3)
    np.testing.assert_array_equal(np.asarray(sampler.images), miniimagenet_io.decode_images(paths, source))


def test_flags_map_to_the_config():
    from maml_tf import main

    main.FLAGS.unparse_flags()
    try:
        main.FLAGS(["main", "--datasource=folder", "--data_dir=data/leaves", "--folder_split=0.7,0.1,0.2",
                    "--image_size=32", "--channels=1"])
        cfg = main.config_from_flags(main.FLAGS)
    finally:
        main.FLAGS.unparse_flags()
    assert (cfg.dataset, cfg.data_dir, cfg.folder_split, cfg.image_size, cfg.channels) == \
        ("folder", "data/leaves", "0.7,0.1,0.2", 32, 1)
    assert run_name(cfg).startswith("folder-leaves.5way5shot.")


@pytest.mark.parametrize("flags, size, network", [
    ([], 20, (False, 64)),  # small images: the paper's Omniglot net (stride 2, 64 filters)
    (["--image_size=64"], 64, (True, 32)),  # RGB at 64 px: its MiniImageNet net
    (["--image_size=64", "--channels=1"], 64, (False, 64)),  # grey: the Omniglot net
    (["--image_size=64", "--max_pool=False"], 64, (False, 64)),  # a network flag given: kept
])
def test_the_network_follows_the_images(tmp_path, capsys, flags, size, network):
    from maml_tf import main

    root = write_tree(tmp_path / "data")
    main.FLAGS.unparse_flags()
    try:
        main.FLAGS(["main", "--datasource=folder", f"--data_dir={root}", f"--cache_dir={tmp_path}",
                    f"--logdir={tmp_path / 'logs'}", *flags])
        cfg, workdir = main.config_and_workdir(main.FLAGS)
    finally:
        main.FLAGS.unparse_flags()
    assert (cfg.max_pool, cfg.num_filters) == network
    assert workdir.endswith(".conv32.maxpool" if network[0] else ".conv64")  # named by the choice
    said = capsys.readouterr().err
    assert ("MiniImageNet network" if network[0] else "Omniglot network" if not flags or
            "--max_pool=False" not in flags else "") in said


def test_channels_follow_the_images(tmp_path, capsys):
    root = write_tree(tmp_path / "data")
    for c in range(12):  # every image grey (one of them 1-bit): read as grey
        for i in range(6):
            path = os.path.join(root, f"class{c:02d}", f"{i}.png")
            Image.open(path).convert("1" if (c, i) == (0, 0) else "L").save(path)
    assert datasets.get_sampler(config(root, tmp_path / "cache1")).input_shape == (20, 20, 1)
    class_image(3, 9, (20, 20)).save(os.path.join(root, "class03", "9.png"))  # one RGB image
    assert datasets.get_sampler(config(root, tmp_path / "cache2")).input_shape == (20, 20, 3)
    assert "mixed modes RGB (1), grey (72): all read as RGB" in capsys.readouterr().err
