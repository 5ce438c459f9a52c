"""MoodCat's networks (Yang et al., ECCV 2022; official code cure-lab/MOODCat, CIFAR10_masking),
scaled to 28×28 (any side divisible by 4).

* :class:`MaskEncoder` — VAE-style encoder of the masked image: strided convolutions of width
  ``ndf, 2·ndf, 4·ndf`` (official ndf 32), then ``mu`` and ``logvar`` of an ``nz``-d latent
  (official nz 128); the latent is sampled (reparameterisation) in training and at test.
* :class:`ConditionalGenerator` — BigGAN (spectral norm, no attention, hier = False): ``z`` goes
  through a linear layer to ``4·ch × S/4 × S/4``; the shared class embedding conditions every
  batch-norm of the two up-sampling residual blocks (``4·ch → 2·ch → ch``; gain ``1 + W·e``, bias
  ``W·e``); BN-ReLU-conv and ``tanh``: pixels in [-1, 1] (official G_ch 32, embedding 128; the
  official 32×32 stack has three blocks from 4×4, 28×28 has two from 7×7).
* :class:`UNetDiscriminator` — U-Net BigGAN discriminator (Schönfeld et al., CVPR 2020) as the
  official one: an encoder with a global (``mid``) real/fake logit with class projection and a
  decoder with a per-pixel (``2d``) logit with class projection. ``unet=False`` keeps the encoder
  only: a projection discriminator (Miyato & Koyama 2018), the simpler choice for tiny budgets.
* :class:`PairDiscriminator` — MoodCat's label-conditional pair discriminator on
  ``concat(x, synthesis)``: a projection discriminator whose logit says "the synthesis under this
  label does not match the input" (higher = more OOD).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MaskEncoder", "ConditionalGenerator", "UNetDiscriminator", "PairDiscriminator"]

SN = nn.utils.parametrizations.spectral_norm  # BigGAN's discriminators use spectral norm


def _check_side(size: int, who: str) -> None:
    if size % 4 or size < 8:
        raise ValueError(f"{who}: image_size must be a multiple of 4 and >= 8, got {size}")


class MaskEncoder(nn.Module):
    """``forward(x_masked) -> (mu, logvar)``. As the official encoder it sees only the masked
    image (masked pixels are 0, mid-grey in [-1, 1]), no mask channel."""

    def __init__(self, in_channels: int = 1, image_size: int = 28, ndf: int = 32, nz: int = 128):
        super().__init__()
        _check_side(image_size, "MaskEncoder")
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1), nn.BatchNorm2d(2 * ndf), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1), nn.BatchNorm2d(4 * ndf), nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten())
        self.head = nn.Linear(4 * ndf * (image_size // 4) ** 2, 2 * nz)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.head(self.net(x))
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)


class _CBN(nn.Module):
    """Conditional batch-norm: BatchNorm without affine, gain ``1 + W_g c`` and bias ``W_b c``."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = SN(nn.Linear(cond_dim, channels, bias=False))
        self.bias = SN(nn.Linear(cond_dim, channels, bias=False))

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        return self.bn(h) * (1 + self.gain(c))[:, :, None, None] + self.bias(c)[:, :, None, None]


class _GBlock(nn.Module):
    """BigGAN up-block: CBN-ReLU-up-conv-CBN-ReLU-conv + up-conv1×1 skip."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int):
        super().__init__()
        self.bn1, self.bn2 = _CBN(c_in, cond_dim), _CBN(c_out, cond_dim)
        self.conv1, self.conv2 = SN(nn.Conv2d(c_in, c_out, 3, 1, 1)), SN(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.skip = SN(nn.Conv2d(c_in, c_out, 1))

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
        out = self.conv1(up(F.relu(self.bn1(h, c))))
        out = self.conv2(F.relu(self.bn2(out, c)))
        return out + self.skip(up(h))


class ConditionalGenerator(nn.Module):
    """``forward(z, y) -> image`` in [-1, 1], ``[N, C, S, S]``."""

    def __init__(self, num_classes: int, out_channels: int = 1, image_size: int = 28, ch: int = 32,
                 nz: int = 128, shared_dim: int = 128):
        super().__init__()
        _check_side(image_size, "ConditionalGenerator")
        self.side, self.ch = image_size // 4, ch
        self.shared = nn.Embedding(num_classes, shared_dim)  # BigGAN's shared class embedding
        self.linear = SN(nn.Linear(nz, 4 * ch * self.side ** 2))  # z enters here only (hier = False)
        self.blocks = nn.ModuleList([_GBlock(4 * ch, 2 * ch, shared_dim), _GBlock(2 * ch, ch, shared_dim)])
        self.out = nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU(inplace=True), SN(nn.Conv2d(ch, out_channels, 3, 1, 1)),
                                 nn.Tanh())

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        c = self.shared(y)
        h = self.linear(z).view(len(z), 4 * self.ch, self.side, self.side)
        for block in self.blocks:
            h = block(h, c)
        return self.out(h)


class _DBlock(nn.Module):
    """BigGAN down-block (spectral norm): ReLU-conv-ReLU-conv-avgpool + conv1×1-avgpool skip."""

    def __init__(self, c_in: int, c_out: int, down: bool = True, preact: bool = True):
        super().__init__()
        self.conv1, self.conv2 = SN(nn.Conv2d(c_in, c_out, 3, 1, 1)), SN(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.skip = SN(nn.Conv2d(c_in, c_out, 1))
        self.down, self.preact = down, preact

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(x) if self.preact else x
        h = self.conv2(F.relu(self.conv1(h)))
        s = self.skip(x)
        if self.down:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return h + s


class _UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1, self.conv2 = SN(nn.Conv2d(c_in, c_out, 3, 1, 1)), SN(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.skip = SN(nn.Conv2d(c_in, c_out, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + self.skip(x)


class UNetDiscriminator(nn.Module):
    """``forward(x, y) -> (mid [N], pixel [N, S, S])`` real/fake logits (``pixel`` is None when
    ``unet=False``: a projection discriminator)."""

    def __init__(self, num_classes: int, in_channels: int = 1, image_size: int = 28, ch: int = 32, unet: bool = True):
        super().__init__()
        _check_side(image_size, "UNetDiscriminator")
        self.unet = unet
        self.down = nn.ModuleList([_DBlock(in_channels, ch, preact=False), _DBlock(ch, 2 * ch), _DBlock(2 * ch, 4 * ch, down=False)])
        self.mid = SN(nn.Linear(4 * ch, 1))
        self.embed_mid = SN(nn.Embedding(num_classes, 4 * ch))
        if unet:
            self.up = nn.ModuleList([_UpBlock(4 * ch, 2 * ch), _UpBlock(2 * ch + ch, ch)])
            self.pixel = nn.Conv2d(ch, 1, 1)  # official: plain 1x1 conv (no SN)
            self.embed_pixel = SN(nn.Embedding(num_classes, ch))

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        skips, h = [], x
        for block in self.down:
            h = block(h)
            skips.append(h)
        pooled = F.relu(h).sum(dim=(2, 3))
        mid = self.mid(pooled).flatten() + (self.embed_mid(y) * pooled).sum(1)
        if not self.unet:
            return mid, None
        u = self.up[0](h)                                   # S/4 -> S/2
        u = F.relu(self.up[1](torch.cat([u, skips[0]], dim=1)))  # S/2 -> S, with the encoder's S/2 map
        pixel = self.pixel(u).squeeze(1) + torch.einsum("nchw,nc->nhw", u, self.embed_pixel(y))
        return mid, pixel


class PairDiscriminator(nn.Module):
    """``forward(x, synthesis, y) -> logit [N]``: "``synthesis`` (made under label ``y``) does not
    match ``x``" — a label-conditional projection discriminator on ``concat(x, synthesis)``."""

    def __init__(self, num_classes: int, in_channels: int = 1, image_size: int = 28, ch: int = 64):
        super().__init__()
        _check_side(image_size, "PairDiscriminator")
        # Official (models/Dis_ood.py, StudioGAN SNGAN D32 "ProjGAN"): 6 -> 64 (down), 64 (down), 64, 64.
        self.blocks = nn.Sequential(_DBlock(2 * in_channels, ch, preact=False), _DBlock(ch, ch),
                                    _DBlock(ch, ch, down=False), _DBlock(ch, ch, down=False))
        self.linear = SN(nn.Linear(ch, 1))
        self.embed = SN(nn.Embedding(num_classes, ch))

    def forward(self, x: Tensor, synthesis: Tensor, y: Tensor) -> Tensor:
        h = F.relu(self.blocks(torch.cat([x, synthesis], dim=1))).sum(dim=(2, 3))
        return self.linear(h).flatten() + (self.embed(y) * h).sum(1)
