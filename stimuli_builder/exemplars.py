"""Natural exemplars: one streaming pass that keeps, per channel, the extremes and quantiles.

A unit's activation on an image is the spatial mean of its channel. For every channel of
every requested layer at once, :func:`mine` keeps the top-k and bottom-k images (exact) and
a uniform reservoir sample of whole activation vectors (Vitter's algorithm R, seeded), from
which quantiles are estimated and query images near a quantile are chosen. With at most
``reservoir`` images the quantiles are exact; beyond that they are the sample's quantiles.
Memory is O(channels x (k + reservoir)) whatever the number of images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .models import get_layer, model_device, record_layers

__all__ = ["LayerExemplars", "mine", "spatial_mean"]


def spatial_mean(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C) by averaging over space; (N, C) passes through."""
    return t.mean(dim=tuple(range(2, t.ndim))) if t.ndim > 2 else t


@dataclass
class LayerExemplars:
    """Per-channel extremes of one layer; indices refer to the order images were given."""

    layer: str
    top_index: torch.Tensor      # (C, k), highest activation first
    top_value: torch.Tensor      # (C, k)
    bottom_index: torch.Tensor   # (C, k), lowest activation first
    bottom_value: torch.Tensor   # (C, k)
    sample_index: torch.Tensor   # (R,) image indices in the reservoir sample
    sample_value: torch.Tensor   # (R, C) their activations
    n_images: int

    @property
    def channels(self) -> int:
        """Number of channels in the layer."""
        return int(self.top_index.shape[0])

    def quantile(self, q: float | Sequence[float], channel: Optional[int] = None) -> torch.Tensor:
        """Activation quantile(s) per channel (exact when all images fit in the reservoir)."""
        values = self.sample_value if channel is None else self.sample_value[:, channel:channel + 1]
        qs = torch.as_tensor(q, dtype=values.dtype)
        out = torch.quantile(values, qs, dim=0)
        return out if channel is None else out[..., 0]

    def near_quantile(self, channel: int, q: float, n: int = 1,
                      exclude: Iterable[int] = ()) -> list[int]:
        """Indices of the ``n`` sampled images whose activation lies nearest the q-quantile."""
        values = self.sample_value[:, channel]
        target = torch.quantile(values, torch.tensor(q, dtype=values.dtype))
        order = torch.argsort((values - target).abs())
        banned = set(int(i) for i in exclude)
        picked: list[int] = []
        for pos in order.tolist():
            idx = int(self.sample_index[pos])
            if idx not in banned and idx not in picked:
                picked.append(idx)
                if len(picked) == n:
                    break
        return picked


def _batches(images: torch.Tensor | Iterable, batch_size: int) -> Iterable[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        for start in range(0, len(images), batch_size):
            yield images[start:start + batch_size]
        return
    for batch in images:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


@torch.inference_mode()
def mine(model: nn.Module, images: torch.Tensor | Iterable, layers: Sequence[str], k: int = 9,
         batch_size: int = 64, reservoir: int = 10_000, seed: int = 0,
         progress: bool = False) -> dict[str, LayerExemplars]:
    """One pass over ``images`` (a tensor or an iterable of batches, values in [0, 1]).

    Returns, per layer name, a :class:`LayerExemplars` with the top-k and bottom-k image
    indices and activations of every channel and a reservoir sample for quantiles.
    """
    for name in layers:
        get_layer(model, name)
    device = model_device(model)
    rng = np.random.default_rng(seed)
    top: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    bottom: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    sample_idx = np.zeros(reservoir, dtype=np.int64)
    sample_val: dict[str, torch.Tensor] = {}
    seen = 0
    total = len(images) if isinstance(images, torch.Tensor) else None
    bar = tqdm(total=total, desc="mining exemplars", unit="img", disable=not progress, leave=False)
    with record_layers(model, layers, transform=spatial_mean) as acts:
        for batch in _batches(images, batch_size):
            batch = batch.to(device, non_blocking=True)
            model(batch)
            n = len(batch)
            index = torch.arange(seen, seen + n, device=device)
            # reservoir slots: the first `reservoir` images fill it, later ones replace at random
            slots = np.full(n, -1, dtype=np.int64)
            fill = max(0, min(n, reservoir - seen))
            slots[:fill] = np.arange(seen, seen + fill)
            if fill < n:
                pos = np.arange(seen + fill, seen + n)
                j = rng.integers(0, pos + 1)
                slots[fill:] = np.where(j < reservoir, j, -1)
            keep = np.nonzero(slots >= 0)[0]
            # within a batch a later image overwriting the same slot wins, as in sequence
            last = {int(s): int(i) for i, s in zip(keep, slots[keep])}
            rows = np.fromiter(last.values(), dtype=np.int64, count=len(last))
            dest = np.fromiter(last.keys(), dtype=np.int64, count=len(last))
            sample_idx[dest] = seen + rows
            for name in layers:
                a = acts[name].float()  # (n, C)
                if name not in top:
                    c = a.shape[1]
                    empty_i = torch.empty((c, 0), dtype=torch.long, device=device)
                    empty_v = torch.empty((c, 0), device=device)
                    top[name], bottom[name] = (empty_v, empty_i), (empty_v, empty_i)
                    sample_val[name] = torch.zeros((reservoir, c))
                at = a.t()
                idx = index.expand_as(at)
                for store, largest in ((top, True), (bottom, False)):
                    vals = torch.cat([store[name][0], at], dim=1)
                    ids = torch.cat([store[name][1], idx], dim=1)
                    kk = min(k, vals.shape[1])
                    v, p = torch.topk(vals, kk, dim=1, largest=largest, sorted=True)
                    store[name] = (v, torch.gather(ids, 1, p))
                if len(rows):
                    sample_val[name][torch.from_numpy(dest)] = a[torch.from_numpy(rows).to(device)].cpu()
            seen += n
            bar.update(n)
    bar.close()
    if seen == 0:
        raise ValueError("mine: no images were given")
    size = min(seen, reservoir)
    return {name: LayerExemplars(name, top[name][1].cpu(), top[name][0].cpu(), bottom[name][1].cpu(),
                                 bottom[name][0].cpu(), torch.from_numpy(sample_idx[:size].copy()),
                                 sample_val[name][:size].clone(), seen)
            for name in layers}
