"""Training and sampling speed of the demo priors' networks (configs/priors/*.yaml).

For each prior config it builds the network exactly as ``medprior train-prior`` would and times,
after two warm-up iterations:

- ``train_it_per_s``: optimisation steps per second at the config's batch size (forward,
  MSE loss, backward, gradient clipping, AdamW step; bf16 autocast on CUDA as in training);
- ``nfe_s``: seconds per network evaluation (one Tweedie estimate) for a sampling batch of
  ``--sample-batch`` examples (slices for slice2d, volumes for wavelet3d), and ``nfe_s_per_example``.

Usage: ``python benchmarks/diffusion.py [--device cuda] [--out benchmarks/out/diffusion.json]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from measure import machine_info, median_time, timing_device, write_report
from medprior.devices import autocast
from medprior.tasks.priors import build_prior, load_prior_config


def time_training(prior, batch_size: int, steps: int, device: torch.device, sync) -> float:
    network = prior.network.train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    channels = prior.channels + prior.condition_channels
    images = torch.rand(batch_size, channels, *prior.image_size, device=device) * 2 - 1

    def step() -> None:
        latents = prior.encode(images[:, : prior.channels])
        inputs = torch.cat([latents, prior.encode(images[:, prior.channels:])], 1) if prior.condition_channels else latents
        t = torch.randint(0, prior.schedule.steps, (batch_size,), device=device)
        with autocast(device):
            loss = (network(inputs, t).float() - latents).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()

    step(), step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps / (time.perf_counter() - start)


@torch.no_grad()
def time_evaluation(prior, batch: int, repeats: int, device: torch.device, sync) -> float:
    prior.network.eval()
    condition = torch.zeros(batch, prior.condition_channels, *prior.image_size, device=device) \
        if prior.condition_channels else None
    denoiser = prior.denoiser(condition=condition)
    x = torch.randn(prior.latent_shape(batch), device=device)
    t = torch.full((batch,), prior.schedule.steps // 2, device=device)
    with autocast(device):
        denoiser(x, t)
    return median_time(lambda: denoiser(x, t), repeats, sync)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=Path, nargs="+",
                        default=sorted(Path("configs/priors").glob("*.yaml")))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--sample-batch", type=int, default=16, help="examples per network evaluation (2D)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/diffusion.json"))
    args = parser.parse_args()
    device, sync = timing_device(parser, args.device)
    results = {}
    for path in args.configs:
        config = load_prior_config(path)
        torch.manual_seed(0)
        prior = build_prior(config).to(device)
        batch = args.sample_batch if config["kind"] == "slice2d" else 1
        train = time_training(prior, config["training"]["batch_size"], args.train_steps, device, sync)
        nfe = time_evaluation(prior, batch, args.repeats, device, sync)
        results[config["name"]] = {
            "kind": config["kind"], "image_size": config["image_size"],
            "parameters": sum(p.numel() for p in prior.network.parameters()),
            "train_batch": config["training"]["batch_size"], "train_it_per_s": train,
            "sample_batch": batch, "nfe_s": nfe, "nfe_s_per_example": nfe / batch,
        }
        print(config["name"], results[config["name"]], flush=True)
    write_report(args.out, {"benchmark": "demo prior networks: training it/s, seconds per network evaluation",
                            **machine_info(device), "priors": results})


if __name__ == "__main__":
    main()
