"""Feature visualization cost: batched against one unit at a time, and against a bare step.

    .venv/bin/python bench/featurevis.py [--size 64] [--units 32] [--steps 24] [--threads 2]

On a seeded, untrained resnet18 (nothing downloaded) at ``--size`` px it prints:
  * bare forward+backward (gradient to the input, weights frozen) per image at batch 1 and
    at batch ``--units``; also with weight gradients, as a reference;
  * our optimization step (FFT parameterization, decorrelated colour, per-image random
    transforms, per-image unit objectives, Adam) per image at batch ``--units``;
  * render() of ``--units`` units batched against one unit at a time, per unit, at equal
    steps and size (target >= 3x), and our step against the bare step (target <= 1.3x).
The first 16 steps of a default render use ReLU gradient redirection; the step figures here
are measured with it off (it is 16 of 512 steps), and its own cost is printed separately.
"""

from __future__ import annotations

import argparse
import time

import torch


def _seeded_resnet18():
    from torchvision.models import resnet18

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return resnet18(weights=None).eval()


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _per_call(fn, calls: int, repeats: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from stimuli_builder.featurevis import render
    from stimuli_builder.models import IMAGENET_MEAN, IMAGENET_STD, InputNormalize, default_device

    device = default_device()
    model = _seeded_resnet18()
    model.register_forward_pre_hook(InputNormalize(IMAGENET_MEAN, IMAGENET_STD))
    model = model.to(device)
    n, size = args.units, args.size
    print(f"device {device}, torch threads {torch.get_num_threads()}, resnet18 (untrained, seeded), {size} px")

    def bare(batch: int, weights: bool) -> float:
        for p in model.parameters():
            p.requires_grad_(weights)
        x = torch.rand((batch, 3, size, size), device=device, requires_grad=True)

        def step() -> None:
            model.zero_grad(set_to_none=True)
            model(x)[:, 0].sum().backward()
        t = _per_call(step, 5 if batch > 1 else 20, repeats=2)
        for p in model.parameters():
            p.requires_grad_(True)
        return t / batch

    units = [("layer3", c) for c in range(n)]
    steps = args.steps

    def run(us, redirect: int = 0) -> float:
        start = time.perf_counter()
        render(model, us, size=size, steps=steps, seed=0, redirect_steps=redirect)
        _sync()
        return time.perf_counter() - start

    run(units[:2])  # warm-up
    # rounds interleave every measurement and keep each one's best, so that load from other
    # processes on a shared machine inflates all figures alike rather than one of them
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        figures = {"b1": bare(1, False), "bn": bare(n, False), "b1w": bare(1, True), "bnw": bare(n, True),
                   "batched": run(units) / n, "single": run(units[:1]), "redirect": run(units, steps) / n}
        for key, value in figures.items():
            best[key] = min(best.get(key, float("inf")), value)
    b1, bn, b1w, bnw = best["b1"], best["bn"], best["b1w"], best["bnw"]
    batched, single, with_redirect = best["batched"], best["single"], best["redirect"]
    print(f"bare fwd+bwd (input grad)   : {b1 * 1e3:7.2f} ms/img at batch 1, {bn * 1e3:7.2f} ms/img at batch {n} "
          f"(compute limit {b1 / bn:.2f}x)")
    print(f"bare fwd+bwd (+weight grads): {b1w * 1e3:7.2f} ms/img at batch 1, {bnw * 1e3:7.2f} ms/img at batch {n}")
    step_per_img = batched / steps
    print(f"render {n} units batched    : {batched * 1e3:8.1f} ms per unit ({steps} steps) = "
          f"{step_per_img * 1e3:.2f} ms per image-step")
    print(f"render one unit at a time  : {single * 1e3:8.1f} ms per unit ({steps} steps)")
    print(f"batched speed-up per unit  : {single / batched:.2f}x (target >= 3x)")
    print(f"our step / bare fwd+bwd    : {step_per_img / bn:.2f}x at batch {n} (target <= 1.3x; "
          f"{step_per_img / bnw:.2f}x against the step with weight gradients)")
    print(f"with ReLU redirection on   : {with_redirect / steps * 1e3:.2f} ms per image-step "
          f"({with_redirect / batched:.2f}x; used for the first 16 of 512 default steps)")


if __name__ == "__main__":
    main()
