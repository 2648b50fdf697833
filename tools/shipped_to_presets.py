"""Converts the shipped `.keras` files into preset directories (once).

    python tools/shipped_to_presets.py [--from DIR]

For each shipped name, loads `DIR/<name>.keras` (default: the package's
`keras_diffusion/weights/`, where the `.keras` files were shipped before
presets, as in git history before the change that removed them), writes the
preset `keras_diffusion/weights/<name>/` with `save_to_preset`, and checks
that the preset gives the `.keras` file's model: the same class, the same
weights bit for bit and, for the models that sample, the same images for
the same seed. The `.keras` metadata (its Keras version and save date) is
kept in the preset's `metadata.json` under `converted_from`. Prints one line
per model and exits 1 if any check fails.
"""

import argparse
import json
import os
import sys
import zipfile

import keras
import numpy as np


def main():
    from keras_diffusion.models import SAMPLING_MODELS
    from keras_diffusion.presets import PRETRAINED
    from keras_diffusion.presets import WEIGHTS_DIR
    from keras_diffusion.presets import load_model
    from keras_diffusion.presets import save_to_preset

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", default=WEIGHTS_DIR,
                        help="Directory of the <name>.keras files.")
    args = parser.parse_args()
    failed = []
    for name, (directory, _) in PRETRAINED.items():
        keras_file = os.path.join(args.source, f"{name}.keras")
        if not os.path.isfile(keras_file):
            print(f"{name:<14} skipped: no {keras_file}")
            continue
        with zipfile.ZipFile(keras_file) as archive:
            old_metadata = json.loads(archive.read("metadata.json"))
        old = load_model(keras_file)
        preset_dir = os.path.join(WEIGHTS_DIR, directory)
        save_to_preset(old, preset_dir, metadata={"converted_from": {
            "file": f"{name}.keras", **old_metadata}})
        new = load_model(preset_dir)
        same_type = type(new) is type(old)
        same_weights = len(old.weights) == len(new.weights) and all(
            a.path == b.path and np.array_equal(keras.ops.convert_to_numpy(a),
                                                keras.ops.convert_to_numpy(b))
            for a, b in zip(old.weights, new.weights))
        same_images = None
        if isinstance(old, SAMPLING_MODELS):
            kwargs = dict(num_steps=8, seed=0, progress=False)
            if old.conditional:
                kwargs.update(labels=np.arange(4) % old.num_classes, guidance=4.0)
            same_images = np.array_equal(old.generate(4, **kwargs),
                                         new.generate(4, **kwargs))
        ok = same_type and same_weights and same_images is not False
        if not ok:
            failed.append(name)
        print(f"{name:<14} {'ok' if ok else 'FAILED':<7} {type(new).__name__:<20} "
              f"weights {'equal' if same_weights else 'DIFFER'}, images "
              f"{'-' if same_images is None else 'equal' if same_images else 'DIFFER'}"
              f"  -> {os.path.relpath(preset_dir)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
