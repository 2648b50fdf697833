"""diffusers' reference for `benchmarks/performance.py`: the same UNet in
diffusers, trained and sampled the way diffusers' examples do.

    KERAS_BACKEND=torch python benchmarks/performance.py --worker diffusers ...

`worker_diffusers` trains a `UNet2DModel` of recipe `ddpm`'s shape with a
plain PyTorch loop in the style of diffusers' unconditional training example
(AdamW, MSE on the noise, `DDPMScheduler.add_noise`, `EMAModel`), samples
with `DDIMScheduler` as `DDIMPipeline` loops, and counts its FLOPs.
"""

import os
import time

from flop_count import torch_flop_count
from performance_workers import cpu_seconds
from performance_workers import emit
from performance_workers import load_images
from performance_workers import max_rss_mib

# The diffusers UNet2DModel matched to recipe "ddpm" (widths 16/32/64, one
# ResBlock per level down and two up, self-attention with 32-dim heads at
# the 7x7 level and in the middle, a 128-dim time embedding, 8 groups).
DIFFUSERS_UNET = {
    "sample_size": 28, "in_channels": 1, "out_channels": 1,
    "block_out_channels": (16, 32, 64), "layers_per_block": 1,
    "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    "attention_head_dim": 32, "norm_num_groups": 8, "time_embedding_dim": 128,
}


def worker_diffusers(args):
    """diffusers' UNet2DModel: training loop, DDIM sampling, then FLOPs."""
    import torch
    import torch.nn.functional as F
    from diffusers import DDIMScheduler
    from diffusers import DDPMScheduler
    from diffusers import UNet2DModel
    from diffusers.training_utils import EMAModel

    torch.manual_seed(0)
    batch = args.batch
    images, source = load_images(args.data, max(batch * 8, 2048))
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    unet = UNet2DModel(**DIFFUSERS_UNET)
    result = {"backend": "torch (diffusers)", "batch": batch, "data": source,
              "params": sum(p.numel() for p in unet.parameters()),
              "load": os.getloadavg()[0],
              "torch_threads": torch.get_num_threads()}
    # Training, as diffusers' examples/unconditional_image_generation does
    # it (without accelerate, and sampling batches from a tensor in memory).
    schedule = {"num_train_timesteps": 1000, "beta_schedule": "linear",
                "beta_start": 1e-4, "beta_end": 0.02}
    noise_scheduler = DDPMScheduler(**schedule)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-3, weight_decay=1e-4)
    ema = EMAModel(unet.parameters(), decay=0.995)
    generator = torch.Generator().manual_seed(0)
    unet.train()

    def train_step():
        clean = data[torch.randint(len(data), (batch,), generator=generator)]
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, 1000, (batch,), generator=generator)
        noisy = noise_scheduler.add_noise(clean, noise, timesteps)
        pred = unet(noisy, timesteps, return_dict=False)[0]
        loss = F.mse_loss(pred.float(), noise.float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(unet.parameters())
        return loss.item()

    start = time.perf_counter()
    for _ in range(2):
        train_step()
    warmup = time.perf_counter() - start
    losses, intervals, cpu_intervals, loads = [], [], [], []
    for _ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        last = None
        for _ in range(args.steps):
            losses.append(train_step())
            now, cpu = time.perf_counter(), cpu_seconds()
            if last is not None:
                intervals.append(now - last[0])
                cpu_intervals.append(cpu - last[1])
            last = (now, cpu)
    count = len(intervals) * batch
    result["train"] = {"images_per_s": count / sum(intervals),
                       "images_per_cpu_s": count / sum(cpu_intervals),
                       "timed_steps": len(intervals), "warmup_s": warmup,
                       "losses": [round(loss, 5) for loss in losses],
                       "load_during": sum(loads) / len(loads),
                       "train_rss_mib": max_rss_mib()}
    del optimizer, ema
    # DDIM sampling, as diffusers' DDIMPipeline loops (256 images at once).
    unet.eval()
    ddim = DDIMScheduler(**schedule, clip_sample=True)
    ddim.set_timesteps(args.sample_steps)
    samples = torch.randn((args.images, 1, 28, 28), generator=generator)
    with torch.no_grad():
        start = time.perf_counter()
        unet(samples, ddim.timesteps[0])
        first = time.perf_counter() - start
        load = os.getloadavg()[0]
        start, cpu0 = time.perf_counter(), cpu_seconds()
        for t in ddim.timesteps:
            output = unet(samples, t).sample
            samples = ddim.step(output, t, samples, eta=0.0).prev_sample
        result["sample"] = {"seconds": time.perf_counter() - start,
                            "cpu_s": cpu_seconds() - cpu0, "first_step_s": first,
                            "load": load, "rss_mib": max_rss_mib(),
                            "images": args.images, "steps": args.sample_steps}
    result["flops"] = torch_flop_count(
        lambda: unet(torch.zeros((1, 1, 28, 28)), torch.tensor([500])))
    result["load_end"] = os.getloadavg()[0]
    emit(result)
