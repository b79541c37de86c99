"""Resizes raw miniImageNet images (named as in the split CSVs) to 84x84 and files them by split and class.

Writes `<out>/{train,val,test}/<wnid>/<file>.jpg`, the layout of cbfinn/maml's
`data/miniImagenet/proc_images.py`, with the same resize (PIL, Lanczos, to 84x84) and the same JPEG
settings (PIL's defaults); unlike it, the source images are copied, never moved or overwritten.
An image that already is 84x84 is copied byte for byte (no second JPEG compression).

    python data/prepare_miniimagenet.py --images=path/to/images --csv_dir=path/to/csvs \
        --out=data/miniimagenet
"""

import argparse
import csv
import os
import shutil
import sys

from PIL import Image

SIZE = (84, 84)
SPLITS = ("train", "val", "test")


def read_rows(path):
    """(filename, wnid) rows of a split CSV with the header `filename,label`."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows or rows[0] != ["filename", "label"]:
        raise SystemExit(f"error: {path} does not start with the header filename,label")
    return [(r[0], r[1]) for r in rows[1:]]


def prepare(images_dir, csv_dir, out_dir, splits=SPLITS, log=print):
    """Writes every image of every split CSV into out_dir/<split>/<wnid>/; returns how many it wrote."""
    plan = {s: read_rows(os.path.join(csv_dir, f"{s}.csv")) for s in splits}
    missing = [f for rows in plan.values() for f, _ in rows
               if not os.path.isfile(os.path.join(images_dir, f))]
    if missing:
        raise SystemExit(f"error: {len(missing)} images listed in the CSVs are not in {images_dir}, "
                         f"e.g. {missing[0]}")
    written = 0
    for split, rows in plan.items():
        for filename, wnid in rows:
            source = os.path.join(images_dir, filename)
            folder = os.path.join(out_dir, split, wnid)
            os.makedirs(folder, exist_ok=True)
            target = os.path.join(folder, filename)
            with Image.open(source) as im:
                if im.size == SIZE and im.format == "JPEG":
                    shutil.copyfile(source, target)
                else:
                    im.convert("RGB").resize(SIZE, resample=Image.LANCZOS).save(target, "JPEG")
            written += 1
            if written % 5000 == 0:
                log(f"{written} images written")
        # the CSV goes beside the split folders, so maml_tf checks the result against it
        shutil.copyfile(os.path.join(csv_dir, f"{split}.csv"), os.path.join(out_dir, f"{split}.csv"))
    log(f"wrote {written} images of {len(plan)} splits into {out_dir}")
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", required=True, help="folder of the raw images (e.g. the unzipped images/)")
    parser.add_argument("--csv_dir", required=True, help="folder holding train.csv, val.csv and test.csv")
    parser.add_argument("--out", default=os.path.join("data", "miniimagenet"),
                        help="output root; pass <data_dir>/miniimagenet to maml_tf (default: data/miniimagenet)")
    args = parser.parse_args(argv)
    prepare(args.images, args.csv_dir, args.out)


if __name__ == "__main__":
    sys.exit(main())
