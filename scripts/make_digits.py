#!/usr/bin/env python3
"""Write data/digits/digits.txt from scikit-learn's copy of the UCI handwritten digits.

    /tmp/peers-venv/bin/python scripts/make_digits.py        # needs scikit-learn

The data: 1,797 images of 8x8 pixels, each pixel a count 0..16 of "on" pixels in a 4x4 block
of a 32x32 bitmap (17 grey levels), with the digit 0..9 as label: the test part of the UCI
"Optical Recognition of Handwritten Digits" data set (Alpaydin & Kaynak 1998, CC BY 4.0), as
`sklearn.datasets.load_digits` ships it. Attribution: data/digits/README.md.

Format (read by `score_sde::backend::digits`): lines starting with '#' are comments; every
other line is one image, `<label> <64 symbols>`, the symbols the pixel levels in row-major
order written in base 17 with the alphabet 0123456789abcdefg (so 'g' = 16). The rows keep
scikit-learn's order. The script checks that its output parses back to the same arrays.
"""
import os
import sys

import numpy as np
from sklearn.datasets import load_digits

ALPHABET = "0123456789abcdefg"
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "data", "digits", "digits.txt")


def encode(images, labels):
    lines = [
        "# UCI ML handwritten digits (Alpaydin & Kaynak 1998), CC BY 4.0: see README.md here.",
        "# Written by scripts/make_digits.py from sklearn.datasets.load_digits.",
        f"# {len(labels)} images of 8x8 pixels, 17 grey levels; one line per image:",
        "# <label 0-9> <64 pixel levels, row-major, base 17 with 0-9a-g (g = 16)>",
    ]
    for img, lab in zip(images, labels):
        lines.append(f"{lab} " + "".join(ALPHABET[v] for v in img))
    return "\n".join(lines) + "\n"


def decode(text):
    imgs, labs = [], []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        lab, px = line.split(" ")
        labs.append(int(lab))
        imgs.append([ALPHABET.index(c) for c in px])
    return np.array(imgs), np.array(labs)


def main():
    d = load_digits()
    images = d.data.astype(np.int64)
    labels = d.target.astype(np.int64)
    assert images.shape == (1797, 64) and images.min() == 0 and images.max() == 16
    assert np.array_equal(images, d.data)  # the levels are whole numbers
    text = encode(images, labels)
    back_imgs, back_labs = decode(text)
    assert np.array_equal(back_imgs, images) and np.array_equal(back_labs, labels)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", newline="\n") as f:
        f.write(text)
    counts = np.bincount(labels, minlength=10)
    print(f"wrote {OUT}: {len(labels)} images, {len(text)} bytes; per class {counts.tolist()}; "
          f"scikit-learn {__import__('sklearn').__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
