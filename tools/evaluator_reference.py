"""Saves an evaluator's reference features (what `kd evaluate` compares with).

    python tools/evaluator_reference.py evaluator --data ../shared/data/mnist --name MNIST

`kd train evaluator` saves them itself; this writes them for an evaluator
trained before it did, such as the shipped one (whose file,
`keras_diffusion/weights/evaluator/reference.npz`, this command wrote). The
features are of the first `--num` images of the data's train and test
splits (`keras_diffusion.data.load_splits`), written where
`Evaluator.load` finds them (`keras_diffusion.metrics.reference_path`).
Prints the floors it then gives at a few sample counts, which must equal
the ones computed from `--data` directly.
"""

import argparse

import numpy as np


def main():
    from keras_diffusion.metrics import Evaluator
    from keras_diffusion.metrics import reference_path
    from keras_diffusion.metrics.evaluator import REFERENCE_IMAGES
    from keras_diffusion.presets import resolve_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the evaluator: shipped name, .keras path "
                                      "or preset directory")
    parser.add_argument("--data", required=True, help="the images it judges")
    parser.add_argument("--name", help="how `kd evaluate` names them "
                                       "(default: the --data given)")
    parser.add_argument("--num", type=int, default=REFERENCE_IMAGES,
                        help="images per split (default %(default)s)")
    args = parser.parse_args()

    evaluator = Evaluator.load(args.model)
    reference = evaluator.compute_reference(args.data, args.num, args.name)
    path = evaluator.save_reference(reference_path(resolve_model_path(args.model)))
    print(f"Wrote {path}: {len(reference['train'])} train and "
          f"{len(reference['test'])} test features of {reference['data']}.")
    saved = Evaluator.load(args.model)
    for num in (256, 1000, len(reference["test"])):
        if num <= min(len(reference["train"]), len(reference["test"])):
            from_file, from_data = saved.floor(num), saved.floor(num, args.data)
            if not np.isclose(from_file, from_data, rtol=0, atol=1e-6):
                raise SystemExit(f"Floor at {num}: {from_file} from the file, "
                                 f"{from_data} from --data.")
            print(f"floor at {num}: {from_file:.4f}")


if __name__ == "__main__":
    main()
