#!/usr/bin/env python3
"""Converts the UCI 8x8 handwritten digits shipped inside scikit-learn into MNIST-style IDX files.

One-off: the output is committed under crates/mxgluon/data/digits/ and embedded into the library
(`mxgluon::gluon::data::vision::Digits`). Run it again only to check or regenerate those files:

    python3 -m venv /tmp/digits-venv
    /tmp/digits-venv/bin/pip install scikit-learn      # any version shipping digits.csv.gz
    /tmp/digits-venv/bin/python scripts/make_digits.py  # from the repository root

or, with a copy of `sklearn/datasets/data/digits.csv.gz` at hand and only NumPy installed:

    python3 scripts/make_digits.py --csv path/to/digits.csv.gz

Never commit the virtual environment. No network access is needed beyond installing the package.

What it does:
* reads the 1,797 rows of `digits.csv.gz` (64 pixel values 0..16, row-major 8x8, then the label);
* scales every pixel to 0..255 with `round(v * 255 / 16)` (Python's round, half to even: the
  one tie, v = 8 -> 127.5, becomes 128), so the digits and MNIST normalise the same way (divide
  by 255);
* splits about 80/20, **stratified and seeded**: for each class c = 0..9, in order, the row
  indices of class c are permuted with one `numpy.random.RandomState(SEED)` (the legacy
  Mersenne Twister generator, whose stream NumPy keeps fixed across versions), the first
  `round(0.2 * count)` go to the test split and the rest to training; each split is then sorted
  back to the CSV's row order;
* writes gzipped IDX files (gzip with mtime 0 and no file name, level 9, so the bytes depend only
  on the data and zlib's output) and a README.md listing the counts and SHA-256 sums.
"""

import argparse
import collections
import csv
import gzip
import hashlib
import io
import os
import struct
import sys

SEED = 20240601
TEST_FRACTION = 0.2
OUT_DIR = os.path.join("crates", "mxgluon", "data", "digits")
FILES = {
    "train-images": "train-images-idx3-ubyte.gz",
    "train-labels": "train-labels-idx1-ubyte.gz",
    "test-images": "t10k-images-idx3-ubyte.gz",
    "test-labels": "t10k-labels-idx1-ubyte.gz",
}


def find_csv():
    """The digits.csv.gz inside the installed scikit-learn package."""
    try:
        import sklearn.datasets
    except ImportError:
        sys.exit("scikit-learn is not installed here; see the top of this script (or pass --csv)")
    path = os.path.join(os.path.dirname(sklearn.datasets.__file__), "data", "digits.csv.gz")
    if not os.path.exists(path):
        sys.exit(f"{path} does not exist in this scikit-learn version; pass --csv")
    return path


def read_rows(path):
    with gzip.open(path, "rt", newline="") as f:
        rows = [[int(float(v)) for v in row] for row in csv.reader(f) if row]
    for i, row in enumerate(rows):
        if len(row) != 65:
            sys.exit(f"row {i}: expected 65 values, found {len(row)}")
        if not all(0 <= v <= 16 for v in row[:64]) or not 0 <= row[64] <= 9:
            sys.exit(f"row {i}: a pixel outside 0..16 or a label outside 0..9")
    return rows


def split(labels):
    import numpy as np

    rng = np.random.RandomState(SEED)
    by_class = collections.defaultdict(list)
    for i, y in enumerate(labels):
        by_class[y].append(i)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.asarray(by_class[c], dtype=np.int64)).tolist()
        n_test = round(TEST_FRACTION * len(idx))
        test.extend(idx[:n_test])
        train.extend(idx[n_test:])
    return sorted(train), sorted(test)


def idx_bytes(type_code, dims, payload):
    header = bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return header + payload


def gz(data):
    buf = io.BytesIO()
    # filename="" and mtime=0: no name and no time stamp in the header.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", help="path of digits.csv.gz (default: the one inside scikit-learn)")
    ap.add_argument("--out", default=OUT_DIR, help=f"output folder (default {OUT_DIR})")
    args = ap.parse_args()
    src = args.csv or find_csv()
    with open(src, "rb") as f:
        src_sha = hashlib.sha256(f.read()).hexdigest()
    rows = read_rows(src)
    labels = [r[64] for r in rows]
    train, test = split(labels)
    os.makedirs(args.out, exist_ok=True)
    sums, counts = {}, {}
    for part, rows_idx in (("train", train), ("test", test)):
        images = bytes(round(v * 255 / 16) for i in rows_idx for v in rows[i][:64])
        labs = bytes(labels[i] for i in rows_idx)
        for kind, data in (
            ("images", idx_bytes(0x08, [len(rows_idx), 8, 8], images)),
            ("labels", idx_bytes(0x08, [len(rows_idx)], labs)),
        ):
            name = FILES[f"{part}-{kind}"]
            blob = gz(data)
            with open(os.path.join(args.out, name), "wb") as f:
                f.write(blob)
            sums[name] = hashlib.sha256(blob).hexdigest()
        counts[part] = collections.Counter(labs)
    write_readme(args.out, src_sha, train, test, counts, sums)
    print(f"train {len(train)}, test {len(test)} -> {args.out}")
    for name, s in sums.items():
        print(f"{s}  {name}")


def write_readme(out, src_sha, train, test, counts, sums):
    per_class = "\n".join(
        f"| {c} | {counts['train'][c]} | {counts['test'][c]} |" for c in range(10)
    )
    files = "\n".join(f"| `{n}` | `{s}` |" for n, s in sums.items())
    text = f"""# UCI 8x8 handwritten digits as IDX files

Made by `scripts/make_digits.py` (run from the repository root; see the top of the script) from
`sklearn/datasets/data/digits.csv.gz` as shipped inside the scikit-learn package. SHA-256 of the
file used:
`{src_sha}`.
Embedded into the library as `mxgluon::gluon::data::vision::Digits`.

## Source and licence

Optical Recognition of Handwritten Digits, E. Alpaydin and C. Kaynak, UCI Machine Learning
Repository (1998), https://doi.org/10.24432/C50P49. Licensed under Creative Commons Attribution
4.0 International (CC BY 4.0, https://creativecommons.org/licenses/by/4.0/). scikit-learn ships
the 1,797 test-set images of that data set; the changes made here: pixel values rescaled from
0..16 to 0..255 (`round(v * 255 / 16)`), a new train/test split, and the IDX file format.

## Layout

MNIST's IDX format and file names, gzipped: images are `u8`, shape (N, 8, 8), row-major, 0 =
background, 255 = ink; labels are `u8`, shape (N,), values 0..9.

Split: stratified and seeded (seed {SEED}): per class, a `numpy.random.RandomState` permutation
puts `round(0.2 * count)` images into the test split, the rest into training; both splits keep
the CSV's row order. {len(train)} training and {len(test)} test images ({len(train) + len(test)} in all).
The split is by image, not by writer: the 13 people who wrote these digits appear in both splits,
so test accuracy here is more optimistic than on writers never seen in training.

| label | train | test |
|---|---|---|
{per_class}

## Files

| file | SHA-256 |
|---|---|
{files}
"""
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
