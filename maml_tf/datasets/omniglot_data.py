"""Omniglot's 1,623 characters x 20 drawings as one prepared 28x28 array, from the official zips or tfds, cached.

Resizing, and why "Lanczos as the original" is not what it seems: the original's
`resize_images.py` calls `Image.open(png).resize((28, 28), Image.LANCZOS)` on the official
PNGs, which are mode "1" (1 bit per pixel). Pillow (and PIL before it) silently replaces the
filter by NEAREST for mode "1" and "P" images (`Image.resize`: `if self.mode in ("1", "P"):
resample = NEAREST`), so the images behind the paper's numbers are binary nearest-neighbour
samples (source pixel floor((i + 0.5) * 105 / 28) with the installed Pillow 13), not
Lanczos-filtered ones. The default, `resize="original"`, reproduces exactly those pixels by
making the original's very call on the mode-"1" image: it is the data the paper's numbers
were obtained on. `resize="lanczos"` converts to "L" first and gives a real, anti-aliased
Lanczos resize (grey levels), which is what the original's code says but not what it did.
"""

import functools
import hashlib
import io
import os
import re
import sys
import zipfile
from typing import Dict, Iterable, List, NamedTuple, Tuple

import numpy as np
import PIL
from PIL import Image

from maml_tf.datasets import DATA_DIR_SOURCES, npz_cache
from maml_tf.errors import UserError

ZIPS = ("images_background.zip", "images_evaluation.zip")  # background = the authors' training set
NUM_CHARACTERS, DRAWINGS, SOURCE_SIZE, SIZE = 1623, 20, 105, 28
RESIZES = ("original", "lanczos")
SOURCES = ("files", "tfds")
PREP_VERSION = 1  # bump when the preparation below changes: every cache is then rebuilt
WHERE = ("get images_background.zip and images_evaluation.zip from the python/ folder of "
         "https://github.com/brendenlake/omniglot (keep them zipped), or use --data_source=tfds")
_PNG = re.compile(r"^images_(background|evaluation)/([^/]+)/(character\d+)/(\d+)_(\d+)\.png$")


class Omniglot(NamedTuple):
    """The prepared dataset; character i is the official global character id i + 1."""

    images: np.ndarray  # [1623, 20, 28, 28] uint8, ink = 255, paper = 0; drawings in canonical order
    alphabet: np.ndarray  # [1623] int32, index into the 50 alphabet names sorted (as tfds numbers them)
    background: np.ndarray  # [1623] bool, True for the 964 characters of images_background


def resize(paper: np.ndarray, mode: str = "original") -> np.ndarray:
    """[105, 105] bool (True = white paper, as the PNGs) -> [28, 28] uint8 ink (255 = full ink)."""
    image = Image.fromarray(np.asarray(paper, dtype=bool))  # mode "1", as the official PNGs
    if mode == "lanczos":
        image = image.convert("L")  # real Lanczos needs grey levels (see the module docstring)
    elif mode != "original":
        raise UserError(f"unknown omniglot resize {mode!r}: use one of {', '.join(RESIZES)}")
    small = np.asarray(image.resize((SIZE, SIZE), Image.LANCZOS))
    paper_level = small.astype(np.uint8) * 255 if small.dtype == bool else small
    return (255 - paper_level).astype(np.uint8)  # the original inverts: ink = 1


def _canonical_order(drawings: List[np.ndarray]) -> List[int]:
    """The 20 drawings of a character sorted by their source pixels.

    tfds does not keep the drawer number, so both sources order drawings by content: the
    prepared array is then identical whatever order the examples arrive in.
    """
    keys = [np.packbits(d).tobytes() for d in drawings]
    return sorted(range(len(drawings)), key=lambda i: keys[i])


def assemble(characters: Dict[int, Tuple[str, bool, List[np.ndarray]]], mode: str) -> Omniglot:
    """{global id: (alphabet, background, 20 source drawings)} -> Omniglot, characters in id order."""
    ids = sorted(characters)
    names = sorted({alphabet for alphabet, _, _ in characters.values()})
    images = np.zeros((len(ids), DRAWINGS, SIZE, SIZE), np.uint8)
    alphabet = np.zeros(len(ids), np.int32)
    background = np.zeros(len(ids), bool)
    for i, char_id in enumerate(ids):
        name, is_background, drawings = characters[char_id]
        if len(drawings) != DRAWINGS:
            raise UserError(f"omniglot character {char_id} has {len(drawings)} drawings, not "
                            f"{DRAWINGS}: the data is incomplete; {WHERE}")
        for j, k in enumerate(_canonical_order(drawings)):
            images[i, j] = resize(drawings[k], mode)
        alphabet[i], background[i] = names.index(name), is_background
    return Omniglot(images, alphabet, background)


def _decode_png(data: bytes, where: str) -> np.ndarray:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError) as err:
        raise UserError(f"cannot decode {where}: {err}; {WHERE}") from err
    if image.mode != "1" or image.size != (SOURCE_SIZE, SOURCE_SIZE):
        raise UserError(f"{where} is a {image.mode} {image.size} image, not 1-bit 105x105: "
                        f"not the official Omniglot; {WHERE}")
    return np.asarray(image)


def read_zips(directory: str) -> Dict[int, Tuple[str, bool, List[np.ndarray]]]:
    """The source drawings of `directory`/images_{background,evaluation}.zip, by global character id."""
    characters = {}
    for name in ZIPS:
        path = os.path.join(directory, name)
        try:
            with _open_zip(path) as archive:
                for info in archive.infolist():
                    match = _PNG.match(info.filename)
                    if not match:
                        continue
                    subset, alphabet, _, char_id, _ = match.groups()
                    entry = characters.setdefault(int(char_id), (alphabet, subset == "background", []))
                    entry[2].append(_decode_png(archive.read(info), f"{path}:{info.filename}"))
        except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, OSError) as err:
            raise UserError(f"{path} is not a readable zip ({err}): truncated or corrupt? "
                            f"Download it again: {WHERE}") from err
    return characters


def read_tfds() -> Dict[int, Tuple[str, bool, List[np.ndarray]]]:
    """The same drawings from `tfds.load("omniglot")`: train = background, test = evaluation."""
    import tensorflow_datasets as tfds

    characters = {}
    for split, is_background in (("train", True), ("test", False)):
        try:
            dataset = tfds.load("omniglot", split=split, shuffle_files=False)
        except Exception as err:  # download or preparation failure, with tfds's many exception types
            raise UserError(f"tensorflow-datasets could not load omniglot ({type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''}); it downloads from "
                            "GitHub, or use the zips with --data_source=files") from err
        for example in tfds.as_numpy(dataset):
            image = example["image"]  # [105, 105, 3] uint8, 0 (ink) or 255 (paper)
            alphabet = f"alphabet{int(example['alphabet']):02d}"  # sorted index: same order as names
            entry = characters.setdefault(int(example["label"]) + 1, (alphabet, is_background, []))
            entry[2].append(image[..., 0] > 127)
    return characters


class Listing(NamedTuple):
    """What the zips' file names tell without decoding, in the prepared array's character order."""

    alphabet: np.ndarray  # [characters] int32, as Omniglot.alphabet
    background: np.ndarray  # [characters] bool, as Omniglot.background
    drawings: np.ndarray  # [characters] int, PNGs per character


@functools.lru_cache(maxsize=4)
def listing(directory: str) -> Listing:
    """The characters of `directory`'s zips from their central directories (no image is read)."""
    check_files(directory)
    characters = {}
    for name in ZIPS:
        with _open_zip(os.path.join(directory, name)) as archive:
            for match in filter(None, map(_PNG.match, archive.namelist())):
                subset, alphabet, _, char_id, _ = match.groups()
                entry = characters.setdefault(int(char_id), [alphabet, subset == "background", 0])
                entry[2] += 1
    ids = sorted(characters)
    names = sorted({characters[i][0] for i in ids})  # as `assemble` numbers the alphabets
    return Listing(np.asarray([names.index(characters[i][0]) for i in ids], np.int32),
                   np.asarray([characters[i][1] for i in ids], bool),
                   np.asarray([characters[i][2] for i in ids], np.int64))


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_files(directory: str):
    """UserError naming the missing zips and where to get them, or a truncated one (no central
    directory: cheap to see). Damage inside a zip shows up when the images are read."""
    missing = [name for name in ZIPS if not os.path.isfile(os.path.join(directory, name))]
    if missing:
        raise UserError(f"no {' or '.join(missing)} in {os.path.abspath(directory)} "
                        f"({DATA_DIR_SOURCES}): {WHERE}")
    for name in ZIPS:
        _open_zip(os.path.join(directory, name)).close()


def _open_zip(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise UserError(f"{path} is not a readable zip ({err}): truncated or corrupt? "
                        f"Download it again: {WHERE}") from err


def cache_key(source: str, directory: str, mode: str) -> Dict:
    """What the prepared array depends on; a cache made from anything else is stale."""
    key = {"prep_version": PREP_VERSION, "resize": mode, "pillow": PIL.__version__, "source": source}
    if source == "files":
        check_files(directory)
        key["zips"] = {name: _sha256_file(os.path.join(directory, name)) for name in ZIPS}
    else:
        import tensorflow_datasets as tfds

        key["tfds"] = str(tfds.builder_cls("omniglot").VERSION)
    return key


def read_cache(path: str, key: Dict):
    """The cached Omniglot if `path` holds one made with `key` and its checksum holds, else None."""
    arrays = npz_cache.read(path, key, Omniglot._fields, "omniglot")
    return None if arrays is None else Omniglot(**arrays)


def load(data_dir: str, cache_dir: str, source: str = "files", mode: str = "original") -> Omniglot:
    """The prepared Omniglot, from the cache when it is fresh, else prepared (and cached).

    `source="files"` reads `data_dir`/omniglot/images_{background,evaluation}.zip (which may be
    read-only); `source="tfds"` reads `tfds.load("omniglot")` (tfds's own data directory).
    """
    if source not in SOURCES:
        raise UserError(f"unknown data source {source!r}: use one of {', '.join(SOURCES)}")
    if mode not in RESIZES:
        raise UserError(f"unknown omniglot resize {mode!r}: use one of {', '.join(RESIZES)}")
    directory = os.path.join(data_dir, "omniglot")
    key = cache_key(source, directory, mode)
    path = os.path.join(cache_dir, "omniglot", f"omniglot_{source}_{mode}.npz")
    data = read_cache(path, key)
    if data is None:
        print(f"omniglot: preparing the 28x28 array from {source} (once; cached in {path})",
              file=sys.stderr, flush=True)
        data = assemble(read_zips(directory) if source == "files" else read_tfds(), mode)
        if len(data.images) != NUM_CHARACTERS:
            raise UserError(f"omniglot has {len(data.images)} characters, not {NUM_CHARACTERS}; {WHERE}")
        npz_cache.write(path, key, data._asdict(), "omniglot")
    return data


def alphabet_groups(alphabet: np.ndarray, members: Iterable[int]) -> List[np.ndarray]:
    """The characters of `members` grouped by alphabet (one array per alphabet, in index order)."""
    members = np.asarray(sorted(members))
    return [members[alphabet[members] == a] for a in np.unique(alphabet[members])]
