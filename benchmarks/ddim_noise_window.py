"""Where DDPM's fresh noise beats DDIM: DDIM with eta = 1 inside a window of t.

    python benchmarks/ddim_noise_window.py --model ddpm --data PATH \
        [--steps 50] [--windows 0:1000 0:0 0:500 250:1000 ...] [--num 1000]

Each window `LOW:HIGH` samples with DDIM on the shipped grid, adding DDPM's
noise (`eta = 1`, the DDPM posterior) at the steps that start at
`LOW <= t < HIGH` and none elsewhere (`0:0` is plain DDIM, `0:1000` a
50-step DDPM). If the noise in a window closes most of the gap between the
two, the network's errors that deterministic DDIM keeps are made or
corrected there. `--num` images are drawn from the same noise as
`model.generate(num, seed=0)` and scored by the shipped evaluator, one
Markdown row per window.
"""

import argparse

import numpy as np


def windowed_sampler(model, num_steps, low, high):
    """A `DDIMSampler` with `eta = 1` for the steps starting at
    `low <= t < high` and `eta = 0` elsewhere."""
    from keras_diffusion.samplers import DDIMSampler

    class WindowedDDIM(DDIMSampler):
        def _sigmas(self, alpha_bars, alpha_bars_prev):
            sigmas = super()._sigmas(alpha_bars, alpha_bars_prev)
            timesteps = np.arange(len(sigmas))
            return np.where((timesteps >= low) & (timesteps < high), sigmas, 0.0)

    return WindowedDDIM(model.schedule, num_steps, eta=1.0,
                        clip_sample=model.clip_sample,
                        pred_noise_scale=model.pred_noise_scale)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Shipped name or .keras path.")
    parser.add_argument("--data", default=None, help="MNIST IDX directory or .npz.")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--windows", nargs="+",
                        default=["0:0", "0:1000", "0:500", "250:1000"])
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=250)
    args = parser.parse_args()

    import keras
    from _tables import model_with_floor
    from _tables import print_header

    from keras_diffusion.samplers import make_step_function
    from keras_diffusion.samplers import run_sampler

    model, evaluator, floor, labels = model_with_floor(args.model, args.num,
                                                       args.data)
    if labels is not None:
        parser.error("--model must be unconditional")
    noise = np.random.default_rng(0).standard_normal(
        (args.num,) + model.image_shape).astype("float32")
    print(f"model {args.model}, backend {keras.backend.backend()}, {args.num} "
          f"samples, DDIM {args.steps} steps; floor {floor:.2f}")
    print_header("| DDPM noise at | FID | confident |")
    for window in args.windows:
        low, high = (int(value) for value in window.split(":"))
        sampler = windowed_sampler(model, args.steps, low, high)
        step_fn = make_step_function(sampler, model.model_fn,
                                     model.network.variables)
        outputs = [
            run_sampler(sampler, step_fn, noise[begin : begin + args.batch_size],
                        seed=begin, progress=False)
            for begin in range(0, args.num, args.batch_size)
        ]
        result = evaluator.evaluate(model.to_images(np.concatenate(outputs)),
                                    data=args.data)
        where = "nowhere (DDIM)" if low >= high else f"{low} <= t < {high}"
        print(f"| {where} | {result['fid']:.2f} | {result['confident_rate']:.1%} |",
              flush=True)


if __name__ == "__main__":
    main()
