"""DiffGuard (Gao, Liu, Xu & Xu, "DiffGuard: Semantic Mismatch-Guided Out-of-Distribution Detection
using Pre-trained Diffusion Models", ICCV 2023, arXiv 2308.07687; official code cure-lab/DiffGuard).

Invert the input with deterministic DDIM (η = 0, *unconditional*) to an intermediate step, denoise
it back *conditioned on the classifier's predicted label*, and score the semantic difference
between input and reconstruction: an ID image comes back as itself, an OOD image is pulled towards
the (wrong) predicted class.

Guidance (``guidance``):

* ``cfg`` — classifier-free: ε̂ = ε∅ + w·(ε_y − ε∅), so ``w = 1`` is the plain conditional model
  and ``w = 0`` the unconditional one (official LDM: w = 10, 25 DDIM steps, inverted all the way).
  *Distinct semantic guidance* (``cam_cut``): ε∅ outside the region where the classifier's
  Grad-CAM of the predicted class, min–max normalised per image, exceeds the cut (official 0.3);
  ``cam_cut: 0`` guides everywhere.
* ``classifier`` — classifier guidance with "clean grad" (official guided-diffusion variant):
  ε̂ = ε∅ − s·√(1−ᾱ_t)·∇ Σ_c log p(ŷ | cutout_c(x_in)), x_in = fac·x̂₀ + (1 − fac)·x_t with
  fac = √(1−ᾱ_t): the classifier's log-probability of the predicted label summed over ``cutouts``
  random crops of (mostly) the predicted clean image (official s = 3, 8 cutouts); the gradient
  does not pass through the UNet. Crops are drawn from each image's own generator.

Adaptive early stop of the inversion (``early_stop``, the guided-diffusion variant): each image
stops inverting after the first step where its inverted latent falls below ``psnr_stop`` dB PSNR
to the input (the official definition, peak 255 on [-1, 1] data: 48.5 dB is an RMSE of 0.96),
capped at ``depth``. The official DISTS criterion needs ImageNet weights and is left out; the
official code also starts denoising one step above the level the inversion reached, we start where
it stopped.

Scores (:data:`SCORES`, parameter ``distance``; higher = more OOD), all from one inversion: ``logit`` — L1 between the
classifier's logits on input and reconstruction (the paper's CIFAR-10 choice and the headline row,
fixed up front); ``feature`` — LPIPS-style distance on the classifier's own feature maps (DISTS
and LPIPS need ImageNet weights that are not available here); ``pixel`` — mean |x − x̂|;
``unguided`` — L1 between the classifier's logits on the guided and the unguided (ε∅)
reconstructions of the same inverted latent (the official ImageNet alternative).

The embedded profile trains a small class-conditional UNet (null class for classifier-free
guidance, label dropout ``p_uncond``) on ID training images; paper profiles load a pre-trained
diffusers pipeline (``train.pretrained``: hub id or local folder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

from ..models.diffusion import Diffusion, class_conditional_unet, config_of, ddpm_alphas_cumprod, from_pretrained
from ..models.gradcam import grad_cam
from ..models.similarity import feature_distance
from ..sets import ID_SET
from ..train import Task, fit
from .base import TRAINING, Key, Param, TrainedDetector, sample_generators
from .method import Gallery, Method

__all__ = ["DiffGuard", "GUIDANCE", "SCORES", "ddim_timesteps"]

SCORES = ("logit", "feature", "pixel", "unguided")
GUIDANCE = ("cfg", "classifier")


def ddim_timesteps(total: int, steps: int) -> list[int]:
    """The DDIM sub-sequence of ``steps`` timesteps of a ``total``-step schedule, ascending,
    "leading" spacing as diffusers' DDIMScheduler: 0, T/S, 2T/S, ..."""
    stride = total // steps
    return [i * stride for i in range(steps)]


class _DiffusionTask(Task):
    """ε-prediction (DDPM "simple" loss) of a class-conditional UNet; labels replaced by the null
    class with probability ``p_uncond`` so one network gives ε_y and ε∅ (Ho & Salimans 2022)."""

    def __init__(self, unet: nn.Module, alphas_cumprod: Tensor, num_classes: int, T: Mapping[str, Any]):
        self.networks, self.alphas, self.num_classes, self.T = {"unet": unet}, alphas_cumprod, num_classes, T

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"unet": torch.optim.AdamW(self.networks["unet"].parameters(), lr=self.T["lr"], weight_decay=0.0)}

    def loss(self, x01: Tensor, y: Tensor) -> Tensor:
        x = x01 * 2 - 1
        a = self.alphas.to(x.device)
        t = torch.randint(0, len(a), (len(x),), device=x.device)
        noise = torch.randn_like(x)
        ab = a[t].view(-1, 1, 1, 1)
        x_t = ab.sqrt() * x + (1 - ab).sqrt() * noise
        drop = torch.rand(len(x), device=x.device) < self.T["p_uncond"]
        labels = torch.where(drop, torch.full_like(y, self.num_classes), y)
        return F.mse_loss(self.networks["unet"](x_t, t, class_labels=labels).sample, noise)

    def training_step(self, batch: Any, step: Any) -> dict[str, float]:
        with step.autocast():
            loss = self.loss(*batch)
        step.update(loss, "unet")
        return {"mse": loss.item()}

    def validation_step(self, batch: Any) -> dict[str, float]:
        return {"mse": self.loss(*batch).item()}


class DiffGuard(TrainedDetector):
    """DiffGuard on a frozen classifier. ``score(x, keys)`` gives the headline score (``distance``);
    :meth:`scores` every score at once (the ablations); :meth:`reconstruct` the images."""

    name: ClassVar[str] = "diffguard"
    # the diffusion model is trained once by the `diffusion` stage; a seeded 512 ID validation images give its per-epoch loss
    method: ClassVar[Method] = Method(train_stage="diffusion", fit_val=512, headline="distance",
                                        title="DiffGuard: reconstructions and ablations")
    random: ClassVar[bool] = True  # classifier guidance draws cutouts per sample
    needs_grad: ClassVar[bool] = True  # Grad-CAM and classifier guidance differentiate the classifier
    params: ClassVar[dict[str, Param]] = {
        "distance": Param("logit", str, choices=SCORES),  # headline fixed up front: the paper's CIFAR-10 score
        "guidance": Param("cfg", str, choices=GUIDANCE),   # cfg: LDM variant; classifier: guided-diffusion variant
        "w": Param(10.0, float, 0.0, 1000.0),              # official LDM classifier-free guidance weight 10
        "cam_cut": Param(0.3, float, 0.0, 1.0, high_open=True),  # official LDM Grad-CAM cut 0.3; 0 = guide everywhere
        "scale": Param(3.0, float, 0.0, 1000.0),           # official classifier-guidance scale 3.0
        "cutouts": Param(8, int, 1, 256),                  # official: 8 random-crop cutouts of x̂₀
        "cut_min": Param(0.875, float, 0.0, 1.0, low_open=True),  # smallest cutout side / image side: official 224 of 256
        "steps": Param(25, int, 1, 1000),                  # DDIM steps over the whole schedule; official LDM 25
        "depth": Param(1.0, float, 0.0, 1.0, low_open=True),  # fraction of the schedule inverted; LDM: all the way
        "early_stop": Param(False, bool),                  # adaptive early stop (guided-diffusion variant)
        "psnr_stop": Param(48.5, float, 0.0, 200.0),       # official early-stop PSNR threshold (dB)
    }
    eval_params: ClassVar[dict[str, Param]] = {
        # Images scored per set, drawn with the seed (None = all): the CPU cannot afford every image.
        "subset": Param(None, int, 1, 10**9, optional=True),
        # Processes that share the scoring (torch.distributed; one GPU each where there are GPUs).
        "processes": Param(1, int, 1, 4096),
    }
    train_params: ClassVar[dict[str, Param]] = {
        "pretrained": Param("", str),                      # diffusers hub id or local folder; empty = train on ID data
        "epochs": Param(100, int, 1, 100_000),
        "images": Param(None, int, 1, 10**9, optional=True),  # a seeded subset of the ID training images (None = all)
        "batch_size": Param(128, int, 2, 65_536),
        "lr": Param(2e-4, float, 0.0, 1.0, low_open=True),  # DDPM (Ho et al. 2020) CIFAR-10 lr 2e-4
        "p_uncond": Param(0.1, float, 0.0, 1.0, high_open=True),  # Ho & Salimans 2022: 0.1-0.2
        "ema": Param(0.9999, float, 0.0, 1.0, high_open=True),   # DDPM EMA decay
        "widths": Param("32,64,64", str),                  # UNet block widths (comma-separated)
        "layers": Param(1, int, 1, 8),                     # ResNet layers per UNet block
        "attention": Param(True, bool),                    # self-attention at the lowest resolution
        **TRAINING,
    }

    def __init__(self, model: nn.Module, **kwargs: Any):
        super().__init__(model, **kwargs)
        try:
            widths = [int(v) for v in self.train_hparams["widths"].split(",")]
            assert widths and all(v > 0 and v % 8 == 0 for v in widths)
        except (ValueError, AssertionError):
            raise ValueError(f"{self.name}: train parameter 'widths' must be comma-separated multiples of 8, "
                             f"e.g. '32,64,64', got {self.train_hparams['widths']!r}") from None
        self.diffusion: Diffusion | None = None

    @property
    def num_classes(self) -> int:
        return self.model.fc.out_features

    # -- networks ---------------------------------------------------------------------------------
    def _build_networks(self, configs: Mapping[str, dict[str, Any]]) -> dict[str, nn.Module]:
        if "pretrained" in configs:  # weights come from the pipeline, not from our checkpoint
            self.diffusion = from_pretrained(configs["pretrained"]["source"])
            return {}
        from diffusers import UNet2DModel

        unet = UNet2DModel(**configs["unet"])
        alphas = ddpm_alphas_cumprod(**configs["schedule"])
        self.diffusion = Diffusion(unet, alphas, num_classes=self.num_classes)
        return {"unet": unet}

    def to(self, device: Any) -> "DiffGuard":
        super().to(device)
        if self.diffusion is not None:
            self.diffusion.to(device)
        return self

    def _fit(self, train: Dataset, *, val: Dataset | None, outliers: Any, checkpoint: Any, progress: bool) -> None:
        T = self.train_hparams
        if T["pretrained"]:
            self.configs = {"pretrained": {"source": T["pretrained"]}}
            self.networks = self._build_networks(self.configs)
            self.diffusion.to(self.device).eval()
            return
        x0 = train[0][0]
        if T["images"] is not None and T["images"] < len(train):  # the CPU budget: fewer steps per epoch
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed))
            train = Subset(train, sorted(order[:T["images"]].tolist()))
        torch.manual_seed(self.seed)
        unet = class_conditional_unet(self.num_classes, x0.shape[0], x0.shape[-1],
                                      tuple(int(v) for v in T["widths"].split(",")), T["layers"], T["attention"])
        schedule = {"steps": 1000, "beta_start": 1e-4, "beta_end": 0.02}  # DDPM linear schedule
        alphas = ddpm_alphas_cumprod(**schedule)
        task = _DiffusionTask(unet, alphas, self.num_classes, T)
        self.history = fit(task, train, val, epochs=T["epochs"], batch_size=T["batch_size"], seed=self.seed,
                           device=T["device"], amp=T["amp"], checkpoint=checkpoint, progress=progress,
                           run_id=f"diffguard {config_of(unet)} {T}", ema={"unet": T["ema"]},
                           desc="diffusion epoch")
        self.configs = {"unet": config_of(unet), "schedule": schedule}
        ema = task.ema["unet"].to(self.device).eval()
        self.networks = {"unet": ema}
        self.diffusion = Diffusion(ema, alphas, num_classes=self.num_classes).to(self.device).eval()

    # -- the algorithm ----------------------------------------------------------------------------
    def schedule(self) -> list[int]:
        """Timesteps of the inversion, ascending (``steps`` over the schedule, first ``depth`` of them)."""
        if self.hparams["guidance"] == "cfg" and not self.diffusion.conditional:
            raise ValueError(f"{self.name}: guidance='cfg' needs a class-conditional diffusion model, but "
                             f"{self.diffusion.source or 'this model'} is unconditional; use guidance='classifier'")
        ts = ddim_timesteps(self.diffusion.steps, self.hparams["steps"])
        return ts[:max(1, round(self.hparams["depth"] * len(ts)))]

    def _alpha(self, i: int, ts: Sequence[int]) -> Tensor:
        """ᾱ at level ``i`` of the sub-sequence; level -1 is the clean image (ᾱ = 1)."""
        a = self.diffusion.alphas_cumprod
        return a.new_ones(()) if i < 0 else a[ts[i]]

    @torch.no_grad()
    def invert(self, z0: Tensor, ts: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Deterministic unconditional DDIM inversion of ``z0`` (model space) along ``ts``.
        Returns the latents ``[N, ...]`` and each image's depth (number of inversion steps taken:
        ``len(ts)``, or fewer where the adaptive early stop fired)."""
        D, P = self.diffusion, self.hparams
        z = z0
        depth = torch.full((len(z0),), len(ts), dtype=torch.long, device=z0.device)
        active = torch.ones(len(z0), dtype=torch.bool, device=z0.device)
        for i, t in enumerate(ts):
            a_prev, a = self._alpha(i - 1, ts), self._alpha(i, ts)
            eps = D.eps(z, t)
            x0 = (z - (1 - a_prev).sqrt() * eps) / a_prev.sqrt()
            z_next = a.sqrt() * x0 + (1 - a).sqrt() * eps
            if P["early_stop"]:
                # Official rule: stop an image once its inverted latent is far enough from the input
                # (PSNR below the threshold, official definition: peak 255 on [-1, 1] data).
                psnr = _psnr(z_next, z0, peak=255.0)
                stop = active & (psnr < P["psnr_stop"])
                depth = torch.where(stop, torch.full_like(depth, i + 1), depth)
                active &= ~stop
                z_next = torch.where((active | stop).view(-1, *[1] * (z.dim() - 1)), z_next, z)
            z = z_next
            if not bool(active.any()):
                break
        return z, depth

    def _guided_eps(self, z: Tensor, t: int, a: Tensor, y: Tensor | None, mask: Tensor | None,
                    generators: Sequence[torch.Generator] | None) -> Tensor:
        """ε̂ at one denoising step; ``y=None``: unguided (ε∅)."""
        D, P = self.diffusion, self.hparams
        if y is None:
            return D.eps(z, t)
        if P["guidance"] == "cfg":
            both = D.eps(torch.cat([z, z]), t, torch.cat([torch.full_like(y, D.num_classes), y]))
            e_null, e_cond = both.chunk(2)
            guided = e_null + P["w"] * (e_cond - e_null)
            return guided if mask is None else torch.where(mask, guided, e_null)
        e_null = D.eps(z, t)
        # "Clean grad" (official guided-diffusion variant): the gradient is taken w.r.t. a blend of
        # the predicted clean image and x_t, fac·x̂₀ + (1 − fac)·x_t with fac = √(1 − ᾱ_t), not
        # through the UNet; summed log-probability over the cutouts, scaled by s, no normalisation.
        fac = (1 - a).sqrt()
        x0 = ((z - fac * e_null) / a.sqrt()).clamp(-1, 1)
        with torch.enable_grad():
            x_in = (x0 * fac + z * (1 - fac)).detach().requires_grad_(True)
            logp = self._cutout_log_prob(D.decode(x_in), y, generators)
            grad, = torch.autograd.grad(logp.sum(), x_in)
        return e_null - fac * P["scale"] * grad

    def _cutout_log_prob(self, x01: Tensor, y: Tensor, generators: Sequence[torch.Generator]) -> Tensor:
        """Sum over ``cutouts`` random square crops (side uniform in [cut_min, 1] of the image,
        official 224–256 px of 256, resized back with nearest neighbours) of log p(y | crop); the
        crops of image i come from ``generators[i]``."""
        P = self.hparams
        n, h, w = len(x01), x01.shape[-2], x01.shape[-1]
        crops = []
        for i, g in enumerate(generators):
            for _ in range(P["cutouts"]):
                side = int(round(h * (P["cut_min"] + (1 - P["cut_min"]) * float(torch.rand((), generator=g)))))
                top = int(torch.randint(0, h - side + 1, (), generator=g))
                left = int(torch.randint(0, w - side + 1, (), generator=g))
                crops.append(F.interpolate(x01[i:i + 1, :, top:top + side, left:left + side], size=(h, w), mode="nearest"))
        logp = F.log_softmax(self.model(torch.cat(crops)), dim=1)
        logp = logp.gather(1, y.repeat_interleave(P["cutouts"]).view(-1, 1))
        return logp.view(n, P["cutouts"]).sum(dim=1)

    def denoise(self, z: Tensor, depth: Tensor, ts: Sequence[int], y: Tensor | None, mask: Tensor | None = None,
                generators: Sequence[torch.Generator] | None = None) -> Tensor:
        """DDIM (η = 0) from each image's own depth back to the clean level, guided towards ``y``
        (``None``: unguided, ε∅); returns images in [0, 1]."""
        for i in reversed(range(len(ts))):
            a, a_prev = self._alpha(i, ts), self._alpha(i - 1, ts)
            on = depth > i  # images inverted at least this deep take this step
            if not bool(on.any()):
                continue
            with torch.no_grad():
                eps = self._guided_eps(z, ts[i], a, y, mask, generators).detach()
                x0 = (z - (1 - a).sqrt() * eps) / a.sqrt()
                z_prev = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
                z = torch.where(on.view(-1, *[1] * (z.dim() - 1)), z_prev, z)
        with torch.no_grad():
            return self.diffusion.decode(z)

    def _mask(self, x01: Tensor, y: Tensor, like: Tensor) -> Tensor | None:
        """Distinct semantic guidance: where the min–max normalised Grad-CAM of ``y`` exceeds the cut
        (at the model space's resolution); ``None`` when the cut is 0 or guidance is by classifier."""
        if self.hparams["guidance"] != "cfg" or self.hparams["cam_cut"] <= 0:
            return None
        cam = grad_cam(self.model, x01, y, size=like.shape[-2:])
        return (cam > self.hparams["cam_cut"]).unsqueeze(1).expand_as(like)

    def _reconstruct(self, x: Tensor, y: Tensor, keys: Sequence[Key]) -> tuple[Tensor, tuple]:
        """The guided reconstruction of ``x`` (model device) under ``y``, and the inversion
        ``(z, depth, ts)`` it started from, so callers can denoise the same latents again."""
        ts = self.schedule()
        with torch.no_grad():
            z0 = self.diffusion.encode(x)
        z, depth = self.invert(z0, ts)
        r = self.denoise(z, depth, ts, y, self._mask(x, y, z0), sample_generators(self.seed, keys))
        return r, (z, depth, ts)

    def reconstruct(self, x: Tensor, y: Tensor | None = None, keys: Sequence[Key] | None = None,
                    guided: bool = True) -> Tensor:
        """Reconstructions in [0, 1] of images ``x`` in [0, 1] under labels ``y`` (default: the
        classifier's prediction); ``guided=False``: the unguided (ε∅) reconstruction."""
        def run(x: Tensor, keys: Sequence[Key]) -> Tensor:
            if not guided:
                ts = self.schedule()
                with torch.no_grad():
                    z, depth = self.invert(self.diffusion.encode(x), ts)
                return self.denoise(z, depth, ts, None)
            labels = self.model(x).argmax(1) if y is None else y.to(x.device)
            return self._reconstruct(x, labels, keys)[0]
        return self._run(run, x, keys)

    def invert_decoded(self, x: Tensor) -> Tensor:
        """The inverted latents of ``x`` decoded to images (what the denoising starts from)."""
        def run(x: Tensor, keys: Sequence[Key]) -> Tensor:
            with torch.no_grad():
                z, _ = self.invert(self.diffusion.encode(x), self.schedule())
                return self.diffusion.decode(z)
        return self._run(run, x, None)

    def sample(self, y: Tensor, keys: Sequence[Key]) -> Tensor:
        """Class-conditional samples in [0, 1] (pure noise from each key's generator, then the
        whole DDIM schedule of ``steps`` under ``y`` with the scoring guidance, Grad-CAM mask off)."""
        def run(x: Tensor, keys: Sequence[Key]) -> Tensor:
            gens = sample_generators(self.seed, [("sample", k) for k in keys])
            shape = (self.diffusion.channels, *self._latent_side())
            z = torch.stack([torch.randn(shape, generator=g) for g in gens]).to(self.device)
            ts = ddim_timesteps(self.diffusion.steps, self.hparams["steps"])
            depth = torch.full((len(z),), len(ts), device=z.device)
            return self.denoise(z, depth, ts, y.to(self.device), None, sample_generators(self.seed, keys))
        return self._run(run, y.view(-1, 1, 1, 1).float(), keys)

    def _latent_side(self) -> tuple[int, int]:
        size = self.diffusion.net.config.sample_size
        return (size, size) if isinstance(size, int) else tuple(size)

    def network_evaluations(self) -> dict[str, int]:
        """Network evaluations per image of :meth:`scores` (without early stop): diffusion-model
        passes (inversion, guided and unguided denoising) and classifier forward passes: logits of
        the input and of both reconstructions, feature maps of the input and of the guided
        reconstruction, the Grad-CAM pass (with a backward) and the cutouts of classifier guidance."""
        n = len(self.schedule())
        P = self.hparams
        guided = 2 * n if P["guidance"] == "cfg" else n
        grad_cam_passes = 1 if P["guidance"] == "cfg" and P["cam_cut"] > 0 else 0
        classifier = 5 + grad_cam_passes + (n * P["cutouts"] if P["guidance"] == "classifier" else 0)
        return {"diffusion": n + guided + n, "classifier": classifier}

    # -- scores -----------------------------------------------------------------------------------
    def scores(self, x: Tensor, keys: Sequence[Key] | None = None) -> dict[str, Tensor]:
        """Every score of :data:`SCORES` ``[N]`` from one inversion, on the CPU."""
        return self._run(self._scores, x, keys)

    def _scores(self, x: Tensor, keys: Sequence[Key]) -> dict[str, Tensor]:
        with torch.no_grad():
            logits = self.model(x)
        r, (z, depth, ts) = self._reconstruct(x, logits.argmax(1), keys)
        r_free = self.denoise(z, depth, ts, None)  # the same inverted latents, unguided
        with torch.no_grad():
            logits_r = self.model(r)
            return {"logit": (logits - logits_r).abs().sum(1),
                    "feature": feature_distance(self.model.feature_maps(x), self.model.feature_maps(r)),
                    "pixel": (x - r).abs().flatten(1).mean(1),
                    "unguided": (logits_r - self.model(r_free)).abs().sum(1)}

    def _score(self, x: Tensor, keys: Sequence[Key]) -> Tensor:
        return self._scores(x, keys)[self.hparams["distance"]]

    # -- what the pipeline's stages show ----------------------------------------------------------
    def training_summary(self, bench: Any, data: Mapping[str, Any]) -> dict[str, Any]:
        return {"parameters": {"diffusion": sum(p.numel() for p in self.diffusion.parameters())},
                "source": self.train_hparams["pretrained"] or "trained here"}

    @torch.no_grad()
    def training_galleries(self, bench: Any, data: Mapping[str, Any]) -> list[Gallery]:
        """Eight samples per class (the first ten), with fixed settings (no scoring parameter
        re-runs the training stage); an unconditional (pre-trained) model follows the classifier."""
        guide = {"w": 10.0} if self.diffusion.conditional else {"guidance": "classifier", "scale": 3.0}
        sampler = self.with_params(steps=25, **guide)
        rows = {}
        for c, cls in enumerate(bench.classes[:10]):  # a row per class, the first ten at most (ImageNet has 1000)
            x = sampler.sample(torch.full((8,), c), keys=[("sample", c, i) for i in range(8)])
            rows[cls] = list(zip(x, self.model(x.to(self.device)).argmax(1).cpu()))
        return [Gallery("samples", (rows,), {"n": 8, "class_names": bench.classes})]

    def checks(self, x: Tensor, keys: Sequence[Key]) -> dict[str, Any]:
        return {"label_agreement": self.label_agreement(x, keys=keys)}

    def cost_details(self) -> dict[str, Any]:
        return {f"{k}_evaluations": v for k, v in self.network_evaluations().items()}

    def score_galleries(self, bench: Any) -> list[Gallery]:
        """Six images of ID test and of the first two sets of each group: inverted, reconstructed
        under the predicted label and under two other labels."""
        grid = {}
        shown = {"ID test": bench.test, **{s: bench.ood[s] for names in bench.groups.values() for s in names[:2]}}
        for s, ds in shown.items():
            x = torch.stack([ds[i][0] for i in range(min(6, len(ds)))])
            keys = [(ID_SET if s == "ID test" else s, i) for i in range(len(x))]
            with torch.no_grad():
                pred = self.model(x.to(self.device)).argmax(1).cpu()
            score = self.score(x, keys=keys)
            grid[s] = list(zip(x, pred))
            grid[f"{s}: inverted"] = list(zip(self.invert_decoded(x), pred))
            grid[f"{s}: predicted label ({', '.join(f'{v:.1f}' for v in score[:3])}…)"] = list(
                zip(self.reconstruct(x, pred, keys), pred))
            for shift in (1, 2):
                other = (pred + shift) % len(bench.classes)
                grid[f"{s}: label +{shift}"] = list(zip(self.reconstruct(x, other, keys), other))
        return [Gallery("samples", (grid,), {"n": 6, "class_names": bench.classes}, file="reconstructions", dpi=70)]

    def describe(self, params: Mapping[str, Any], training: Mapping[str, Any], checks: Mapping[str, Any],
                 costs: Mapping[str, Any]) -> str:
        S, subset = self.hparams, params[self.name]["score"]["subset"]
        scored = f"a seeded subset of {subset} images per set" if subset else "every image"
        return f"""Images inverted with unconditional DDIM ({S['steps']} steps over the schedule, depth {S['depth']}), denoised
back under the classifier's predicted label (`{S['guidance']}` guidance, w = {S['w']}, Grad-CAM cut {S['cam_cut']}); headline
`diffguard` = `{S['distance']}` (fixed in params.yaml before any result). Diffusion model: {training['source']},
{training['parameters']['diffusion']:,} parameters, {training['fit_s']:.0f} s. On ID validation the classifier gives the
conditioning label to **{checks['label_agreement'] * 100:.1f} %** of {checks['n']} guided reconstructions. Scored on
{scored}: {costs['diffusion_evaluations']} diffusion-model evaluations per image, {costs['cost_vs_forward']:.0f} × a
classifier forward pass. Below, every score from the same reconstructions (`diffguard[<score>]`)."""

    @torch.no_grad()
    def label_agreement(self, x: Tensor, keys: Sequence[Key] | None = None) -> float:
        """Share of guided reconstructions the classifier assigns the conditioning (predicted) label."""
        def run(x: Tensor, keys: Sequence[Key]) -> Tensor:
            y = self.model(x).argmax(1)
            return (self.model(self._reconstruct(x, y, keys)[0]).argmax(1) == y).float()
        return float(self._run(run, x, keys).mean())


def _psnr(a: Tensor, b: Tensor, peak: float = 1.0) -> Tensor:
    """PSNR (dB) per image: ``20·log10(peak / RMSE)``."""
    rmse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-24).sqrt()
    return 20 * torch.log10(peak / rmse)
