"""Diffusion models for DiffGuard (diffusers): one wrapper, :class:`Diffusion`, around a noise
predictor ``ε(x_t, t, y)`` and its DDPM noise schedule, whatever the model's origin:

* :func:`class_conditional_unet`: a small class-conditional ``UNet2DModel`` with one extra *null*
  class (index ``num_classes``) for classifier-free guidance, trained on ID data by the embedded
  profile (:mod:`ood.detectors.diffguard`);
* :func:`from_pretrained`: a pre-trained diffusers pipeline, by hub id or local folder (the same
  call, ``DiffusionPipeline.from_pretrained``): an unconditional pixel model such as
  ``google/ddpm-cifar10-32`` (DiffGuard with classifier guidance) or a class-conditional latent
  model such as ``facebook/DiT-XL-2-256`` (classifier-free guidance; a labelled stand-in for the
  paper's LDM cin256-v2).

Images enter and leave in [0, 1]; the model works on ``encode(x)`` (pixels in [-1, 1], or VAE
latents for latent models) and :meth:`Diffusion.decode` maps back.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Diffusion", "class_conditional_unet", "ddpm_alphas_cumprod", "from_pretrained", "PretrainedNotFound"]


class PretrainedNotFound(FileNotFoundError):
    """A pre-trained diffusion model that is neither a local folder nor reachable on the hub."""


def ddpm_alphas_cumprod(steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """ᾱ_t of the DDPM linear schedule (Ho et al. 2020: T = 1000, β from 1e-4 to 0.02)."""
    betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).float()


def class_conditional_unet(num_classes: int, in_channels: int = 1, image_size: int = 28,
                           widths: tuple[int, ...] = (32, 64, 64), layers: int = 1, attention: bool = True) -> nn.Module:
    """A ``UNet2DModel`` predicting ε, with ``num_classes + 1`` class embeddings (the last is the
    null class of classifier-free guidance) and self-attention at the lowest resolution."""
    from diffusers import UNet2DModel

    n = len(widths)
    down = ["DownBlock2D"] * n
    up = ["UpBlock2D"] * n
    if attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(sample_size=image_size, in_channels=in_channels, out_channels=in_channels,
                       block_out_channels=tuple(widths), layers_per_block=layers, down_block_types=tuple(down),
                       up_block_types=tuple(up), num_class_embeds=num_classes + 1, norm_num_groups=8)


class Diffusion(nn.Module):
    """``ε(x_t, t, y)`` with its schedule ``alphas_cumprod``; ``num_classes`` is ``None`` for an
    unconditional model, otherwise class ``num_classes`` is the null class (``y=None`` means it).

    ``net`` is a diffusers ``UNet2DModel`` (``class_labels`` when conditional) or a DiT-style
    ``Transformer2DModel`` (``class_labels``; a learned-variance output is cut to ε). ``vae``
    (latent models) maps images to latents scaled by ``latent_scale``.
    """

    def __init__(self, net: nn.Module, alphas_cumprod: Tensor, num_classes: int | None = None,
                 vae: nn.Module | None = None, latent_scale: float = 1.0, source: str = ""):
        super().__init__()
        self.net, self.vae = net, vae
        self.register_buffer("alphas_cumprod", alphas_cumprod.float().clone(), persistent=False)
        self.num_classes, self.latent_scale, self.source = num_classes, latent_scale, source
        self.channels = int(net.config.in_channels)

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    @property
    def steps(self) -> int:
        return len(self.alphas_cumprod)

    def eps(self, x: Tensor, t: int | Tensor, y: Tensor | None = None) -> Tensor:
        """Predicted noise; ``y=None`` is the unconditional prediction (the null class)."""
        t = torch.as_tensor(t, device=x.device).expand(len(x))
        kwargs = {}
        if self.conditional:
            null = torch.full((len(x),), self.num_classes, device=x.device, dtype=torch.long)
            kwargs["class_labels"] = null if y is None else y.to(x.device)
        out = self.net(x, t, **kwargs).sample
        return out[:, :x.shape[1]]  # learned-variance models (DiT) also predict Σ: keep ε

    def encode(self, x01: Tensor) -> Tensor:
        """Images in [0, 1] -> the model's space (pixels in [-1, 1], or scaled VAE latents)."""
        x = x01 * 2 - 1
        if self.vae is None:
            return x
        return self.vae.encode(x).latent_dist.mode() * self.latent_scale

    def decode(self, z: Tensor) -> Tensor:
        """The model's space -> images in [0, 1]."""
        x = z if self.vae is None else self.vae.decode(z / self.latent_scale).sample
        return ((x + 1) / 2).clamp(0, 1)


def from_pretrained(source: str | os.PathLike, *, num_classes: int | None = None) -> Diffusion:
    """A pre-trained diffusers pipeline, from a hub id (``google/ddpm-cifar10-32``) or a local
    folder written by ``pipeline.save_pretrained`` (the same path for both). Class-conditional
    pipelines (DiT: ``transformer`` with class embeddings) keep their null class, the last index;
    ``num_classes`` overrides how many real classes the model has (DiT: 1000)."""
    from diffusers import DiffusionPipeline

    source = os.fspath(source)
    try:
        pipe = DiffusionPipeline.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise PretrainedNotFound(
            f"cannot load the diffusion model {source!r} ({type(err).__name__}: {err}). Without internet, "
            f"download it elsewhere (`huggingface-cli download {source} --local-dir models/pretrained/<name>`), "
            f"copy the folder here and set the parameter to that folder, or put it in the Hugging Face cache "
            f"(HF_HOME, default ~/.cache/huggingface) and set HF_HUB_OFFLINE=1.") from err
    net = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if net is None:
        raise ValueError(f"{source}: pipeline {type(pipe).__name__} has neither a unet nor a transformer")
    alphas = pipe.scheduler.alphas_cumprod.float()
    vae = getattr(pipe, "vae", None)
    if num_classes is None:  # UNet2DModel: the last of num_class_embeds is the null class; DiT: index 1000
        unet_embeds = getattr(net.config, "num_class_embeds", None)
        dit_classes = getattr(net.config, "num_embeds_ada_norm", None)
        num_classes = int(unet_embeds) - 1 if unet_embeds else (int(dit_classes) if dit_classes else None)
    scale = float(getattr(vae.config, "scaling_factor", 0.18215)) if vae is not None else 1.0
    return Diffusion(net, alphas, num_classes=num_classes, vae=vae, latent_scale=scale, source=source).eval()


def config_of(net: nn.Module) -> dict[str, Any]:
    """A diffusers model's config as plain types (storable in a ``weights_only`` checkpoint)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(net.config).items() if not k.startswith("_")}
