"""FID of DPM-Solver++(2M) or DDIM under several timestep spacings, at equal steps.

    python benchmarks/dpm_spacing.py --model ddpm --data PATH --steps 10 \
        [--sampler dpm|dpm-sde|ddim] [--pred-noise-scale S] \
        [--spacings shipped diffusers to-zero lambda even-t] [--num 1000]

Each spacing is a `DPMSolverSampler` (`--sampler ddim`: a `DDIMSampler`)
whose `timesteps()` is replaced; the update and its coefficients are the
shipped ones. `--num` images are sampled from the same noise (and for
`dpm-sde` the same step noise) as `model.generate(num, seed=0)` (a
class-conditional model: classes cycling 0-9, guidance `--guidance`) and
scored by the shipped evaluator, one Markdown row per spacing:

- `shipped`: the sampler's own `timesteps()`; DPM-Solver's: on the
  linear schedule even in `t` from `T - 1`, the last start at `(T - 1) /
  (2 n - 1)`, then the clean data; on another schedule, the timesteps
  of the same noise levels; DDIM's is `to-zero`;
- `diffusers`: diffusers' "linspace" (`np.linspace(0, T - 1, n + 1)`, reversed,
  without its 0): the last start at about `T / n`, then the clean data
  (for DDIM, the same as diffusers' "trailing");
- `to-zero`: DDIM's spacing here (`np.linspace(T - 1, 0, n)`), then the
  clean data (the last step only removes the noise left at `t = 0`);
- `lambda`: even in `lambda_t` from `T - 1` to 0, then the clean data;
- `even-t`: DPM-Solver's grid before it followed the noise levels (even
  in `t` from `T - 1`, the last start at `(T - 1) / (2 n - 1)`, whatever
  the schedule); on the linear schedule, the same as `shipped`.
"""

import argparse
import copy
import time

import numpy as np


def spacing_timesteps(name, shipped_sampler):
    """The starts of the steps (the last step then goes to the clean data);
    `shipped_sampler` is the model's own (`model.make_sampler`)."""
    schedule, num_steps = shipped_sampler.schedule, shipped_sampler.num_steps
    total = schedule.num_timesteps
    if name == "shipped":
        return [int(t) for t, _ in shipped_sampler.timesteps()]
    if name == "diffusers":
        times = np.linspace(0, total - 1, num_steps + 1).round()[::-1][:-1]
    elif name == "to-zero":
        times = np.linspace(total - 1, 0, num_steps).round()
    elif name == "lambda":
        alpha_bars = schedule.alphas_cumprod
        lambdas = 0.5 * (np.log(alpha_bars) - np.log1p(-alpha_bars))
        targets = np.linspace(lambdas[-1], lambdas[0], num_steps)
        times = np.interp(targets, lambdas[::-1], np.arange(total)[::-1]).round()
    elif name == "even-t":
        times = np.linspace(total - 1, 0, 2 * num_steps)[::2].round()
    else:
        raise ValueError(f"Unknown spacing {name!r}")
    times = [int(t) for t in times]
    if len(set(times)) != len(times):
        raise ValueError(f"{name} spacing repeats a timestep at {num_steps} steps")
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Shipped name or .keras path.")
    parser.add_argument("--data", default=None, help="MNIST IDX directory or .npz.")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--sampler", choices=("dpm", "dpm-sde", "ddim"),
                        default="dpm")
    parser.add_argument("--pred-noise-scale", type=float, default=None,
                        help="Scale of the noise predictions (default: the "
                             "model's own).")
    parser.add_argument("--spacings", nargs="+",
                        default=["shipped", "diffusers", "to-zero", "lambda"])
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    import keras
    from _tables import model_with_floor

    from keras_diffusion.guidance import Conditioning
    from keras_diffusion.samplers import make_step_function
    from keras_diffusion.samplers import run_sampler

    model, evaluator, floor, labels = model_with_floor(args.model, args.num,
                                                       args.data)
    conditioning = Conditioning.resolve(
        model, args.num, labels, None if labels is None else args.guidance)
    # As `generate(seed=0)`: one generator draws the starting noise, then
    # the seed of each batch's step noise (`dpm-sde`).
    noise_rng = np.random.default_rng(0)
    noise = noise_rng.standard_normal(
        (args.num,) + model.image_shape).astype("float32")
    print(f"model {args.model}, backend {keras.backend.backend()}, {args.num} "
          f"samples, {args.sampler} {args.steps} steps"
          + ("" if labels is None else f", guidance {args.guidance}")
          + f"; floor {floor:.2f}")
    print("| spacing | step starts | FID | confident | s / 100 images |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.spacings:
        shipped_sampler = model.make_sampler(
            args.sampler, args.steps, pred_noise_scale=args.pred_noise_scale)
        times = spacing_timesteps(name, shipped_sampler)

        class Sampler(type(shipped_sampler)):
            def timesteps(self, times=times):
                return list(zip(times, times[1:] + [-1]))

        settings = {"stochastic": True} if args.sampler == "dpm-sde" else {}
        sampler = Sampler(model.schedule, args.steps, clip_sample=model.clip_sample,
                          pred_noise_scale=shipped_sampler.pred_noise_scale,
                          **settings)
        step_fn = make_step_function(sampler, model.model_fn,
                                     model.network.variables)
        start = time.perf_counter()
        outputs = []
        rng = copy.deepcopy(noise_rng)
        for index, begin in enumerate(range(0, args.num, args.batch_size)):
            context = conditioning.context(begin, begin + args.batch_size)
            outputs.append(run_sampler(sampler, step_fn,
                                       noise[begin : begin + args.batch_size],
                                       seed=int(rng.integers(2**31)) + index,
                                       progress=False, context=context))
        seconds = time.perf_counter() - start
        result = evaluator.evaluate(model.to_images(np.concatenate(outputs)),
                                    labels=labels, data=args.data)
        print(f"| {name} | {', '.join(map(str, times))} | {result['fid']:.2f} | "
              f"{result['confident_rate']:.1%} | {100 * seconds / args.num:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
