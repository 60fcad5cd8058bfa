"""``flowspec plot``: what a trained flow learned, with matplotlib's non-interactive Agg.

2-D data: the learned density p(x) = exp(log_prob) on a grid as a heat map, beside the
data and the flow's samples.  Image data ([C, H, W], or 64 features read as 8×8 digits):
a grid of samples.  Other data: pairwise marginals (up to 4 features) of samples over
data.  With a ``metrics.csv`` beside the checkpoint, the training curve (loss and
held-out NLL against the step) is the last panel.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from flowspec.runtime.flow import Flow


def _image_shape(flow: Flow) -> tuple[int, int, int] | None:
    shape = tuple(flow.input_shape)
    if len(shape) == 3 and shape[0] in (1, 3):
        return shape
    if shape == (64,):
        return (1, 8, 8)
    return None


def plot(
    flow: Flow,
    x: torch.Tensor,
    name: str,
    metrics: Path | None,
    output: str,
    seed: int = 0,
    n: int = 2000,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    torch.manual_seed(seed)
    flow.eval()
    image = _image_shape(flow)
    d = flow.num_features
    panels = 3 if d == 2 else 1
    panels += metrics is not None
    fig = plt.figure(figsize=(4.2 * panels, 4.0))
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    with torch.no_grad():
        if d == 2:
            _density(flow, x, axes, n)
        elif image is not None:
            _grid(flow, image, axes[0])
        else:
            fig.delaxes(axes[0])
            _pairs(fig, flow, x, n, panels)
    if metrics is not None:
        _curve(axes[-1], metrics)
    fig.suptitle(f"flow `{flow.FLOW_NAME}` on {name}")
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)


def _density(flow: Flow, x: torch.Tensor, axes, n: int) -> None:
    import torch

    data = x[:n].cpu().double()
    lo = data.quantile(0.005, dim=0) - 0.5
    hi = data.quantile(0.995, dim=0) + 0.5
    steps = 120
    gx = torch.linspace(float(lo[0]), float(hi[0]), steps)
    gy = torch.linspace(float(lo[1]), float(hi[1]), steps)
    mesh = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1).reshape(-1, 2)
    dtype = next(iter(flow.parameters())).dtype
    device = next(iter(flow.parameters())).device
    logp = torch.cat([flow.log_prob(c.to(device, dtype)) for c in mesh.split(4096)]).cpu()
    density = logp.exp().reshape(steps, steps).nan_to_num(0.0)
    extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    axes[0].imshow(density.numpy(), origin="lower", extent=extent, aspect="auto", cmap="viridis")
    axes[0].set_title("learned density")
    axes[1].scatter(data[:, 0], data[:, 1], s=2, alpha=0.5)
    axes[1].set_title("data")
    samples = flow.sample(n).cpu()
    axes[2].scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5, color="C1")
    axes[2].set_title("samples")
    for ax in axes[1:3]:
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])


def _grid(flow: Flow, shape: tuple[int, int, int], ax, rows: int = 8) -> None:
    import torch

    samples = flow.sample(rows * rows).cpu().double().reshape(rows * rows, *shape)
    low, high = samples.min(), samples.max()
    samples = (samples - low) / max(float(high - low), 1e-12)
    c, h, w = shape
    tiles = samples.reshape(rows, rows, c, h, w).permute(0, 3, 1, 4, 2)
    grid = tiles.reshape(rows * h, rows * w, c)
    ax.imshow(grid.squeeze(-1).numpy() if c == 1 else grid.numpy(), cmap="gray")
    ax.set_axis_off()
    ax.set_title("samples")
    del torch


def _pairs(fig, flow: Flow, x: torch.Tensor, n: int, panels: int) -> None:
    k = min(4, flow.num_features)
    data = x[:n].reshape(min(n, x.shape[0]), -1)[:, :k].cpu().double()
    samples = flow.sample(n).reshape(n, -1)[:, :k].cpu().double()
    for i in range(k):
        for j in range(k):
            ax = fig.add_subplot(k, k * panels, i * k * panels + j + 1)
            if i == j:
                ax.hist(data[:, i], bins=30, alpha=0.5, density=True)
                ax.hist(samples[:, i], bins=30, alpha=0.5, density=True)
            else:
                ax.scatter(data[:, j], data[:, i], s=1, alpha=0.3)
                ax.scatter(samples[:, j], samples[:, i], s=1, alpha=0.3)
            ax.set_xticks([])
            ax.set_yticks([])


def _curve(ax, metrics: Path) -> None:
    steps, loss, vsteps, val = [], [], [], []
    with metrics.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            try:
                steps.append(int(row["step"]))
                loss.append(float(row["loss"]))
                if row.get("val_nll"):
                    vsteps.append(int(row["step"]))
                    val.append(float(row["val_nll"]))
            except (KeyError, TypeError, ValueError):
                continue
    ax.plot(steps, loss, label="train loss")
    if val:
        ax.plot(vsteps, val, "o-", label="held-out NLL")
    finite = [v for v in loss + val if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) - 0.1, min(max(finite), min(finite) + 5) + 0.1)
    ax.set_xlabel("step")
    ax.set_ylabel("nats per sample")
    ax.legend()
    ax.set_title("training curve")


__all__ = ["plot"]
