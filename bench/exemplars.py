"""Exemplar mining throughput against a bare forward pass over the same images.

    .venv/bin/python bench/exemplars.py [--n 2048] [--batch 64] [--threads 2]

Prints images/second for (a) the bare forward pass and (b) ``exemplars.mine`` keeping
top-k/bottom-k and a reservoir for every channel of several layers, and their ratio
(target >= 0.9). Models: a seeded, untrained resnet18 at 64 px (layers 1-4, 960 channels)
and the demo CNN (blocks 1-4, 176 channels). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import time

import torch


def _seeded(factory, seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory().eval()


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from torchvision.models import resnet18

    from stimuli_builder.demo_world import DemoNet
    from stimuli_builder.exemplars import mine
    from stimuli_builder.models import default_device

    device = default_device()
    images = torch.rand((args.n, 3, args.size, args.size), generator=torch.Generator().manual_seed(0))
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.n} images of {args.size} px, "
          f"batch {args.batch}")
    for name, factory, layers in (("resnet18", lambda: resnet18(weights=None), ["layer1", "layer2", "layer3", "layer4"]),
                                  ("demo CNN", DemoNet, ["block1", "block2", "block3", "block4"])):
        model = _seeded(factory).to(device)

        @torch.inference_mode()
        def bare() -> None:
            for start in range(0, args.n, args.batch):
                model(images[start:start + args.batch].to(device))

        def mined() -> None:
            mine(model, images, layers, k=9, batch_size=args.batch)

        bare(), mined()  # warm-up
        t_bare = _best(bare, args.repeats)
        t_mine = _best(mined, args.repeats)
        print(f"{name:9s} bare forward {args.n / t_bare:8.1f} img/s | mine({len(layers)} layers) "
              f"{args.n / t_mine:8.1f} img/s | throughput ratio {t_bare / t_mine:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
