"""Same seed, same images: a fingerprint of every shipped model's samples.

Run it before and after a change that should not change behaviour (a
refactor), on the same backend:

    KERAS_BACKEND=tensorflow python tools/same_images.py --save /tmp/before.npz
    # ... change the code ...
    KERAS_BACKEND=tensorflow python tools/same_images.py --compare /tmp/before.npz

Each shipped sampling model draws a few images with seed 0 through its
default sampler and with each of its other samplers, the class-conditional
`cfg` at guidance 0, 1 and 4, and the `ddpm` with classifier guidance
(at scale 5, and at 0, which must be exactly unguided).
`--compare` prints the largest difference of each case and exits 1 when
one is above `--tolerance` (float32 rounding: 1e-5 by default) or a case
is missing.
"""

import argparse
import sys

import numpy as np

NUM_IMAGES = 4


def cases():
    """(case name, model name, `generate` keyword arguments)."""
    yield "ddpm default", "ddpm", {}
    yield "ddpm ddim 20", "ddpm", {"sampler": "ddim", "num_steps": 20}
    yield "ddpm ddpm 20", "ddpm", {"sampler": "ddpm", "num_steps": 20}
    yield "ddpm dpm 10", "ddpm", {"sampler": "dpm", "num_steps": 10}
    yield "ldm default", "ldm", {}
    yield "ldm dpm 10", "ldm", {"sampler": "dpm", "num_steps": 10}
    for guidance in (0.0, 1.0, 4.0):
        yield f"cfg guidance {guidance:g}", "cfg", {"labels": [0, 3, 7, 9],
                                                   "guidance": guidance}
    yield "cfg dpm guidance 4", "cfg", {"labels": 3, "guidance": 4.0,
                                        "sampler": "dpm"}
    yield "ddpm classifier 5", "ddpm", {"labels": [1, 2, 7, 8],
                                        "classifier": "classifier",
                                        "classifier_scale": 5.0,
                                        "num_steps": 20}
    yield "ddpm classifier 0", "ddpm", {"labels": [1, 2, 7, 8],
                                        "classifier": "classifier",
                                        "classifier_scale": 0.0,
                                        "num_steps": 20}
    for name in ("rf-pixel", "reflow-pixel", "rf-latent", "reflow-latent"):
        yield f"{name} default", name, {}
        yield f"{name} heun 4", name, {"sampler": "heun", "num_steps": 4}


def draw_all():
    from keras_diffusion import load_model

    loaded = {}

    def model(name):
        if name not in loaded:
            loaded[name] = load_model(name)
        return loaded[name]

    results = {}
    for case, name, kwargs in cases():
        kwargs = dict(kwargs)
        if isinstance(kwargs.get("classifier"), str):
            kwargs["classifier"] = model(kwargs["classifier"])
        results[case] = model(name).generate(NUM_IMAGES, seed=0, progress=False,
                                             **kwargs)
        print(f"{case:28s} mean {results[case].mean():.6f}", flush=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", metavar="NPZ")
    group.add_argument("--compare", metavar="NPZ")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()
    results = draw_all()
    if args.save:
        np.savez(args.save, **results)
        print(f"Wrote {len(results)} cases to {args.save}")
        return 0
    reference = np.load(args.compare)
    failed = sorted(set(reference.files) ^ set(results))
    for case in failed:
        print(f"{case}: only in one of the two runs")
    for case in sorted(set(reference.files) & set(results)):
        difference = float(np.abs(reference[case] - results[case]).max())
        verdict = "ok" if difference <= args.tolerance else "DIFFERENT"
        print(f"{case:28s} max |difference| {difference:.2e}  {verdict}")
        if difference > args.tolerance:
            failed.append(case)
    print("same images" if not failed else f"{len(failed)} cases differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
