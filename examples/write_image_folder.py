"""Write images as a folder of PNGs, one sub-folder per class.

    python examples/write_image_folder.py /usr/share/datasets/fashion-mnist fashion-png \\
        --classes 0 1 7 --num 3000

Reads any source `kd train --data` takes (an MNIST-style IDX directory, an
`.npz`, `tfds:NAME`, another folder) with `keras_diffusion.data.load_images`
and writes `OUT/<class name>/<index>.png`: the layout `kd train --data
OUT` reads, with the classes as sub-folders. Handy to try the folder route
of docs/own_data.md on a known dataset, or to look at the images. Refuses
an OUT that exists, so nothing is overwritten.
"""

import argparse
import os
import shutil
import sys

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="Images to read (any `kd train --data`).")
    parser.add_argument("out", help="Folder to write (must not exist).")
    parser.add_argument("--split", default="train", help="train or test.")
    parser.add_argument("--classes", type=int, nargs="+", default=None,
                        help="Keep only these class indices (default: all).")
    parser.add_argument("--num", type=int, default=None,
                        help="Write at most this many images, the first ones "
                             "of the kept classes (default: all).")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if os.path.exists(args.out):
        sys.exit(f"{args.out} exists; choose a new folder.")
    if args.num is not None and args.num < 1:
        sys.exit(f"--num must be >= 1. Got {args.num}")
    from PIL import Image

    from keras_diffusion.data import DataError
    from keras_diffusion.data import load_images

    try:
        data = load_images(args.source, args.split)
    except (DataError, ValueError) as error:
        sys.exit(f"Error: {error}")
    if data.labels is None:
        sys.exit(f"{args.source} has no labels to make class folders from.")
    keep = np.ones(len(data.images), bool)
    if args.classes is not None:
        unknown = sorted(set(args.classes) - set(range(data.num_classes)))
        if unknown:
            sys.exit(f"--classes {unknown} not in 0-{data.num_classes - 1}.")
        keep = np.isin(data.labels, args.classes)
    indices = np.flatnonzero(keep)[:args.num]
    names = data.class_names or [str(label) for label in range(data.num_classes)]
    tmp = args.out + ".partial"  # renamed to OUT once every file is written
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for index in indices:
            folder = os.path.join(tmp, names[data.labels[index]].replace(os.sep, "_"))
            os.makedirs(folder, exist_ok=True)
            image = data.images[index]
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
                os.path.join(folder, f"{index:06d}.png"))
        os.replace(tmp, args.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"Wrote {len(indices)} images in {len(set(data.labels[indices]))} "
          f"class folders to {args.out}")


if __name__ == "__main__":
    main()
