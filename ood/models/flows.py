"""A fully convolutional multi-scale normalizing flow over image patches (NFlowJS's generator).

Built from nflows' transforms as in RealNVP/Glow (and the authors' DenseFlow code, which stacks
the same kind of steps): at each of ``levels`` scales a squeeze (2x2 space-to-channel), then
``steps`` x (ActNorm, invertible 1x1 convolution, affine coupling with a small convolutional net),
and after every level but the last half of the channels is factored out to the Gaussian base.
Every transform is convolutional and nothing depends on the spatial size, so one set of weights
models and samples patches of any side divisible by ``2**levels`` (nflows'
``MultiscaleCompositeTransform`` fixes the shapes when built, so the multi-scale split lives here).

Pixels in [0, 1] (8-bit levels) are dequantised with uniform noise and mapped to logit space as in
RealNVP (``y = logit(a + (1 - 2a) x)``, ``a = 0.05``); :meth:`PatchFlow.log_prob` includes that
change of variables, so ``nll_bits`` is the usual bits per dimension of the 8-bit data.
:meth:`PatchFlow.sample` is differentiable in the flow's parameters (a loss on the samples reaches
them), which NFlowJS's joint training relies on.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn

__all__ = ["PatchFlow"]

_ALPHA = 0.05  # RealNVP's logit-space margin


class _CouplingNet(nn.Module):
    """conv3x3 -> ReLU -> conv1x1 -> ReLU -> zero-initialised conv3x3 (Glow's coupling net): every
    coupling starts as a fixed per-dimension scale (nflows' sigmoid(0 + 2) + 1e-3 = 0.882), no
    shift. nflows calls it with a ``context`` argument."""

    def __init__(self, c_in: int, c_out: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(c_in, hidden, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(hidden, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, c_out, 3, padding=1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(x)


class PatchFlow(nn.Module):
    """``log_prob(x)`` (nats per patch), ``nll_bits(x)``, ``sample(n, size)`` and the invertible
    map ``encode``/``decode`` between patches ``[N, C, h, w]`` in [0, 1] and the latent list."""

    def __init__(self, channels: int = 1, levels: int = 2, steps: int = 4, hidden: int = 32):
        super().__init__()
        from nflows.transforms import (ActNorm, AffineCouplingTransform, CompositeTransform,
                                       OneByOneConvolution)
        from nflows.transforms.reshape import SqueezeTransform

        self.channels, self.n_levels = channels, levels
        self.levels = nn.ModuleList()
        c = channels
        for level in range(levels):
            c *= 4
            parts: list[nn.Module] = [SqueezeTransform()]
            for k in range(steps):
                mask = torch.ones(c)
                mask[: c // 2] = -1  # alternate which half is transformed, step by step
                parts += [ActNorm(c), OneByOneConvolution(c),
                          AffineCouplingTransform(mask if k % 2 else -mask,
                                                  lambda i, o: _CouplingNet(i, o, hidden))]
            self.levels.append(CompositeTransform(parts))
            if level < levels - 1:
                c //= 2  # half the channels are factored out

    @property
    def factor(self) -> int:
        """Patch sides must be multiples of this."""
        return 2 ** self.n_levels

    def _check(self, h: int, w: int) -> None:
        if h % self.factor or w % self.factor:
            raise ValueError(f"PatchFlow: patch sides must be multiples of {self.factor}, got {h}x{w}")

    def encode(self, y: Tensor) -> tuple[list[Tensor], Tensor]:
        """Logit-space patches -> (latents, one per level, and log|det| per patch)."""
        self._check(*y.shape[-2:])
        latents, logdet, h = [], y.new_zeros(len(y)), y
        for i, t in enumerate(self.levels):
            h, ld = t(h)
            logdet = logdet + ld
            if i < self.n_levels - 1:
                z, h = h.chunk(2, dim=1)
                latents.append(z)
        latents.append(h)
        return latents, logdet

    def decode(self, latents: list[Tensor]) -> Tensor:
        """Latents (as :meth:`encode` gives them) -> logit-space patches."""
        h = latents[-1]
        with warnings.catch_warnings():  # nflows' LU inverse calls the deprecated triangular_solve
            warnings.filterwarnings("ignore", message=".*triangular_solve.*")
            for i in reversed(range(self.n_levels)):
                if i < self.n_levels - 1:
                    h = torch.cat([latents[i], h], dim=1)
                h, _ = self.levels[i].inverse(h)
        return h

    def latent_shapes(self, h: int, w: int) -> list[tuple[int, int, int]]:
        self._check(h, w)
        shapes, c = [], self.channels
        for i in range(self.n_levels):
            c, h, w = c * 4, h // 2, w // 2
            if i < self.n_levels - 1:
                c //= 2
            shapes.append((c, h, w))
        return shapes

    @staticmethod
    def to_logit(x: Tensor) -> tuple[Tensor, Tensor]:
        """[0, 1] -> logit space, with the log|det| of that map per patch."""
        s = _ALPHA + (1 - 2 * _ALPHA) * x
        y = torch.log(s) - torch.log1p(-s)
        logdet = (math.log(1 - 2 * _ALPHA) - torch.log(s) - torch.log1p(-s)).flatten(1).sum(1)
        return y, logdet

    @staticmethod
    def from_logit(y: Tensor) -> Tensor:
        return ((torch.sigmoid(y) - _ALPHA) / (1 - 2 * _ALPHA)).clamp(0, 1)

    def log_prob(self, x: Tensor, dequantize: bool = True, generator: torch.Generator | None = None) -> Tensor:
        """Log-density (nats) of each patch ``x`` in [0, 1] (8-bit levels), dequantised with uniform
        noise (``dequantize``): ``log p(x~) - D log 256`` is the log-probability of the 8-bit patch."""
        if dequantize:
            u = torch.rand(x.shape, generator=generator).to(x.device) if generator is not None else torch.rand_like(x)
            x = (x * 255 + u) / 256
        y, ld_logit = self.to_logit(x)
        latents, logdet = self.encode(y)
        base = sum((-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1) for z in latents)
        return base + logdet + ld_logit

    def nll_bits(self, x: Tensor, **kwargs) -> Tensor:
        """Negative log-likelihood in bits per dimension of 8-bit patches (lower = more typical)."""
        dims = x[0].numel()
        return -(self.log_prob(x, **kwargs) - dims * math.log(256)) / (dims * math.log(2))

    def sample(self, n: int, size: int | tuple[int, int], temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """``n`` patches ``[n, C, h, w]`` in [0, 1], differentiable in the flow's parameters.
        Noise is drawn on the CPU from ``generator`` (reproducible on every device)."""
        h, w = (size, size) if isinstance(size, int) else size
        device = next(self.parameters()).device
        latents = [temperature * torch.randn((n, *shape), generator=generator).to(device)
                   for shape in self.latent_shapes(h, w)]
        return self.from_logit(self.decode(latents))
