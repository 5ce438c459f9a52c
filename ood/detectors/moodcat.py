"""MoodCat (Yang, Wang, Xu, Zhang & Xu, "Out-of-Distribution Detection with Semantic Mismatch
under Masking", ECCV 2022, arXiv 2208.00446; official code cure-lab/MOODCat).

Mask part of the input, synthesise a new image from the masked input *and the classifier's
predicted label*, and score how semantically different input and synthesis are: an ID image
predicted correctly comes back as itself, an OOD image is redrawn as its (wrong) predicted class.

Training (ID training data only, ground-truth labels), the official objective: a VAE-style encoder
``E`` of the masked image and a class-conditional BigGAN generator ``G`` reconstruct the image,
against a U-Net discriminator ``D``::

    L_D = 0.5·[BCE(D_mid(x), 1) + BCE(D_2d(x), 1)] + 0.5·[BCE(D_mid(x̂), 0) + BCE(D_2d(x̂), 0)]
    L_G = 0.5·BCE(D_mid(x̂), 1) + 0.5·BCE(D_2d(x̂), 1) + 2·KL(q(z | masked x) ‖ N(0, I))
          + 5·(−log SSIM(x̂, x)) + 3·‖x̂ − x‖² + 2·|x̂ − x|,     x̂ = G(z, y), z ~ q(z | masked x)

with Adam (G and E 5e-5, D 2e-4, betas (0, 0.999)), pixels in [-1, 1] and an EMA of ``G``.
``discriminator: projection`` drops the U-Net decoder (and the BCE_2d terms): cheaper, for tiny
budgets. Then the *pair discriminator* (its training code is not released; ours is written from the
paper) learns, on ID training data only, to tell ``(x, G(masked x, y), y)`` with the true label
(consistent) from the same with a wrong label ``y' ≠ y`` (mismatched): a label-conditional
projection discriminator on ``concat(x, synthesis)``.

Deliberate differences from the released code (facts from cure-lab/MOODCat, CIFAR10_masking):
the official RandomErasing draws one rectangle per batch chunk (48 images), ours one per image;
its encoder's ``mu``/``logvar`` heads are created after its optimiser and never train (a bug), ours
train; it draws a second mask and synthesis for the generator step, ours reuses the discriminator
step's synthesis (half the generator cost on a CPU); the U-Net discriminator's CutMix consistency
regularisation is not implemented; the official test loads the raw generator, we score with its
EMA (the issue's choice; ``ema`` sets the decay).

Scoring, per image, averaged over ``k`` masks drawn from the sample's own generator (the official
test draws one mask per *batch*; per image is a deliberate deviation so a score does not depend on
its batch-mates), labels = the classifier's prediction (``labels="oracle"`` — ground truth for ID, a
random label for OOD — is what the released evaluation does; an ablation only). Distances
(:data:`DISTANCES`): ``pair`` (pair discriminator logit), ``perceptual`` (LPIPS-style on the
classifier's feature maps, :func:`ood.models.similarity.feature_distance`), ``logit`` (L1 between
the classifier's logits on input and synthesis), ``ssim`` (1 − SSIM), ``pixel`` (mean |x − x̂|), and
``cascade``: the official two-stage cascade made continuous — images the first stage
(``perceptual``) flags at its 95 %-TPR threshold *on ID validation* rank above all others, by that
stage's standardised score; the rest rank by the second stage (``pair``). The gate and the
standardisation come from ID validation (:meth:`MoodCat.calibrate`), never from test data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

from ..models.generators import ConditionalGenerator, MaskEncoder, PairDiscriminator, UNetDiscriminator
from ..models.similarity import feature_distance, ssim
from ..sets import ID_SET, VAL_SET
from ..train import Task, fit, make_loader
from .base import TRAINING, Key, Param, TrainedDetector, eval_mode, sample_generators
from .masking import KINDS, apply_mask, draw_masks, shuffle_patches
from .method import Ablation, Gallery, Method

__all__ = ["MoodCat", "DISTANCES", "LABEL_MODES", "cascade", "oracle_labels"]

DISTANCES = ("pair", "perceptual", "logit", "ssim", "pixel")
SCORES = (*DISTANCES, "cascade")
LABEL_MODES = ("predicted", "oracle")
CASCADE = ("perceptual", "pair")  # first stage (gate), second stage


def cascade(first: Tensor, second: Tensor, gate: float, mu: Tensor, sd: Tensor) -> Tensor:
    """Continuous two-stage cascade: standardise both stages (``mu``, ``sd`` from ID validation);
    an image whose first-stage score exceeds ``gate`` ranks above every ungated image, ordered by
    its first-stage score; the rest by the second. Per image (never depends on its batch-mates):
    ``1.5 + atan(z1)/π`` in (1, 2) when gated, else ``atan(z2)/π`` in (-1/2, 1/2)."""
    z1, z2 = (first - mu[0]) / sd[0], (second - mu[1]) / sd[1]
    # arctan keeps each stage's order in a bounded range: ungated in (-1/2, 1/2), gated in (1, 2).
    return torch.where(z1 > gate, 1.5 + torch.atan(z1) / math.pi, torch.atan(z2) / math.pi)


def training_masks(g: torch.Generator, x: Tensor, T: Mapping[str, Any]) -> Tensor:
    """RandomErasing masks at the training scale (official (0.1, 0.33)), one per image, from ``g``."""
    return draw_masks([g] * len(x), x.shape[-2], x.shape[-1], "erase", (T["scale_min"], T["scale_max"]),
                      (T["ratio_min"], T["ratio_max"])).to(x.device)


def _val_batches(val: Dataset, batch_size: int):
    """``(x, y, keys)`` over ID validation in order, keys ``("val", index)`` as the pipeline's."""
    offset = 0
    for x, y in make_loader(val, batch_size, shuffle=False):
        yield x, y, [("val", offset + i) for i in range(len(x))]
        offset += len(x)


def oracle_labels(seed: int, num_classes: int):
    """The released evaluation's labels (an ablation, never a headline): ground truth for ID
    images (``y >= 0``), a uniformly random class for OOD images (``y == -1``), drawn per sample
    from ``(seed, "oracle", key)``. Returns ``labels(set, y, keys) -> Tensor`` for
    :func:`ood.evaluation.image.score_detector`."""
    def labels(set_name: str, y: Tensor, keys: Sequence[Key]) -> Tensor:
        gens = sample_generators(seed, [("oracle", k) for k in keys])
        rand = torch.stack([torch.randint(0, num_classes, (), generator=g) for g in gens])
        return torch.where(y >= 0, y, rand)
    return labels


class _SynthesisTask(Task):
    """MoodCat's GAN: encoder + generator (optimizer ``g``) against the discriminator (``d``)."""

    def __init__(self, nets: dict[str, nn.Module], T: Mapping[str, Any]):
        self.networks, self.T = nets, T

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        T, n = self.T, self.networks
        betas = (T["beta1"], T["beta2"])
        g_params = [*n["encoder"].parameters(), *n["generator"].parameters()]
        return {"g": torch.optim.Adam(g_params, lr=T["g_lr"], betas=betas),
                "d": torch.optim.Adam(n["discriminator"].parameters(), lr=T["d_lr"], betas=betas)}

    def synthesise(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Training masks (global RNG, re-seeded per epoch by the loop) -> synthesis, mu, logvar."""
        g = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (1,))))
        masks = training_masks(g, x, self.T)
        mu, logvar = self.networks["encoder"](apply_mask(x, masks))
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.networks["generator"](z, y), mu, logvar

    def _adv(self, logits: tuple[Tensor, Tensor | None], real: bool) -> tuple[Tensor, Tensor]:
        target = lambda t: torch.full_like(t, float(real))  # noqa: E731
        mid, pixel = logits
        bce = F.binary_cross_entropy_with_logits
        return bce(mid, target(mid)), (bce(pixel, target(pixel)) if pixel is not None else mid.new_zeros(()))

    def losses(self, x: Tensor, y: Tensor, fake: Tensor, mu: Tensor, logvar: Tensor) -> dict[str, Tensor]:
        T = self.T
        adv_mid, adv_2d = self._adv(self.networks["discriminator"](fake, y), True)
        # Official forms: KL = mean over batch and latent of (e^logvar + mu² − 1 − logvar), no ½;
        # SSIM with the data-range-1 constants on [-1, 1] images, zero padding, one scalar mean.
        kl = (logvar.exp() + mu ** 2 - 1 - logvar).mean()
        ssim_term = -torch.log(ssim(fake, x, data_range=1.0, padding=5).mean().clamp_min(1e-15))
        l2, l1 = F.mse_loss(fake, x), F.l1_loss(fake, x)
        total = (T["w_adv"] * (adv_mid + adv_2d) + T["w_kl"] * kl + T["w_ssim"] * ssim_term
                 + T["w_l2"] * l2 + T["w_l1"] * l1)
        return {"g": total, "kl": kl, "ssim": ssim_term, "l1": l1}

    def training_step(self, batch: Any, step: Any) -> dict[str, float]:
        x01, y = batch
        x = x01 * 2 - 1
        D = self.networks["discriminator"]
        with step.autocast():
            fake, mu, logvar = self.synthesise(x, y)
            real_mid, real_2d = self._adv(D(x, y), True)
            fake_mid, fake_2d = self._adv(D(fake.detach(), y), False)
            loss_d = 0.5 * (real_mid + real_2d) + 0.5 * (fake_mid + fake_2d)
        step.update(loss_d, "d")
        with step.autocast():
            losses = self.losses(x, y, fake, mu, logvar)
        step.update(losses["g"], "g")
        return {"d": loss_d.item(), **{k: v.item() for k, v in losses.items()}}

    def validation_step(self, batch: Any) -> dict[str, float]:
        x01, y = batch
        x = x01 * 2 - 1
        fake, _, _ = self.synthesise(x, y)
        return {"l1": F.l1_loss(fake, x).item(), "ssim": ssim(fake, x, data_range=2.0).mean().item()}


class _PairTask(Task):
    """The pair discriminator on frozen (EMA) synthesis networks: consistent vs mismatched label."""

    def __init__(self, detector: "MoodCat", pair: PairDiscriminator, lr: float, betas: tuple[float, float]):
        self.det, self.networks, self.lr, self.betas = detector, {"pair": pair}, lr, betas

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"pair": torch.optim.Adam(self.networks["pair"].parameters(), lr=self.lr, betas=self.betas)}

    def pairs(self, x01: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Consistent and mismatched syntheses (one training-scale mask per image, shared by both
        labels, as is the noise) and the wrong labels."""
        g = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (1,))))
        wrong = (y + torch.randint(1, self.det.num_classes, y.shape, generator=g).to(y.device)) % self.det.num_classes
        masks = training_masks(g, x01, self.det.train_hparams)
        with torch.no_grad():
            both = self.det._synthesis(x01.repeat(2, 1, 1, 1), torch.cat([y, wrong]), [g] * (2 * len(x01)),
                                       masks=masks.repeat(2, 1, 1), pairs=True)
        x = x01 * 2 - 1
        return x, both[:len(x)], both[len(x):], wrong

    def _loss(self, batch: Any) -> tuple[Tensor, Tensor, Tensor]:
        x01, y = batch
        x, consistent, mismatched, wrong = self.pairs(x01, y)
        pair = self.networks["pair"]
        lc, lm = pair(x, consistent, y), pair(x, mismatched, wrong)
        bce = F.binary_cross_entropy_with_logits
        return bce(lc, torch.zeros_like(lc)) + bce(lm, torch.ones_like(lm)), lc, lm

    @staticmethod
    def _logs(loss: Tensor, consistent: Tensor, mismatched: Tensor) -> dict[str, float]:
        """The loss and the accuracy over both kinds of pairs (logit < 0: consistent)."""
        return {"pair": loss.item(), "acc": ((consistent < 0).float().mean() + (mismatched > 0).float().mean()).item() / 2}

    def training_step(self, batch: Any, step: Any) -> dict[str, float]:
        with step.autocast():
            loss, lc, lm = self._loss(batch)
        step.update(loss, "pair")
        return self._logs(loss, lc, lm)

    def validation_step(self, batch: Any) -> dict[str, float]:
        return self._logs(*self._loss(batch))


class MoodCat(TrainedDetector):
    """MoodCat on a frozen classifier. ``score(x, keys)`` gives the headline score (``distance``);
    :meth:`scores` gives every distance at once (the ablations) and :meth:`synthesise` the images."""

    name: ClassVar[str] = "moodcat"
    method: ClassVar[Method] = Method(headline="distance", title="MoodCat: syntheses and ablations")
    random: ClassVar[bool] = True
    params: ClassVar[dict[str, Param]] = {
        # Headline fixed up front: the official main results use the pair discriminators and their
        # cascade (run_moodcat.sh, detectors 8, 9, 89); the rest are ablations.
        "distance": Param("cascade", str, choices=SCORES),
        "mask": Param("erase", str, choices=KINDS),       # official test: RandomErasing; others: paper's ablation
        "scale_min": Param(0.15, float, 0.0, 1.0, low_open=True, high_open=True),  # official test scale (0.15, 0.33)
        "scale_max": Param(0.33, float, 0.0, 1.0, low_open=True, high_open=True),
        "ratio_min": Param(0.5, float, 0.0, 100.0, low_open=True),   # official ratio (0.5, 2.5)
        "ratio_max": Param(2.5, float, 0.0, 100.0, low_open=True),
        "cells": Param(4, int, 1, 64),                   # grid of the board / mosaic / shuffle masks
        "k": Param(1, int, 1, 256),                       # masks per image; official K = 1
        "labels": Param("predicted", str, choices=LABEL_MODES),  # oracle = the released evaluation's defect (ablation)
        "gate_tpr": Param(0.95, float, 0.0, 1.0, low_open=True, high_open=True),  # cascade gate: TPR on ID validation
    }
    eval_params: ClassVar[dict[str, Param]] = {
        # Images per set scored with the released evaluation's oracle labels (an ablation; None = all).
        "oracle_subset": Param(1000, int, 1, 10**9, optional=True),
    }
    train_params: ClassVar[dict[str, Param]] = {
        "epochs": Param(200, int, 1, 100_000),
        "batch_size": Param(64, int, 2, 65_536),
        "g_lr": Param(5e-5, float, 0.0, 1.0, low_open=True),      # official G lr 5e-5
        "d_lr": Param(2e-4, float, 0.0, 1.0, low_open=True),      # official D lr 2e-4
        "beta1": Param(0.0, float, 0.0, 1.0, high_open=True),     # BigGAN betas (0, 0.999)
        "beta2": Param(0.999, float, 0.0, 1.0, high_open=True),
        "nz": Param(128, int, 1, 4096),                           # official nz 128
        "ndf": Param(32, int, 1, 1024),                           # official encoder ndf 32
        "g_ch": Param(32, int, 1, 1024),                          # official G_ch 32
        "d_ch": Param(32, int, 1, 1024),                          # official D_ch 32
        "shared_dim": Param(128, int, 1, 4096),                   # BigGAN shared class embedding
        "discriminator": Param("unet", str, choices=("unet", "projection")),
        "ema": Param(0.999, float, 0.0, 1.0, high_open=True),     # EMA decay of G (BigGAN 0.9999 from 20k iters)
        "scale_min": Param(0.1, float, 0.0, 1.0, low_open=True, high_open=True),  # official training scale (0.1, 0.33)
        "scale_max": Param(0.33, float, 0.0, 1.0, low_open=True, high_open=True),
        "ratio_min": Param(0.5, float, 0.0, 100.0, low_open=True),
        "ratio_max": Param(2.5, float, 0.0, 100.0, low_open=True),
        "w_adv": Param(0.5, float, 0.0, 1e6),                     # 0.5 BCE_mid + 0.5 BCE_2d
        "w_kl": Param(2.0, float, 0.0, 1e6),
        "w_ssim": Param(5.0, float, 0.0, 1e6),
        "w_l2": Param(3.0, float, 0.0, 1e6),
        "w_l1": Param(2.0, float, 0.0, 1e6),
        "pair_epochs": Param(2, int, 1, 100_000),
        "pair_lr": Param(2e-4, float, 0.0, 1.0, low_open=True),
        "pair_ch": Param(64, int, 1, 1024),  # official pair D (SNGAN D32): width 64
        **TRAINING,
    }

    def __init__(self, model: nn.Module, **kwargs: Any):
        super().__init__(model, **kwargs)
        for prefix, spec in (("", self.hparams), ("train ", self.train_hparams)):
            if spec["scale_min"] > spec["scale_max"] or spec["ratio_min"] > spec["ratio_max"]:
                raise ValueError(f"{self.name}: {prefix}scale_min/ratio_min must not exceed scale_max/ratio_max, got "
                                 f"scale ({spec['scale_min']}, {spec['scale_max']}), ratio ({spec['ratio_min']}, {spec['ratio_max']})")

    @property
    def num_classes(self) -> int:
        return self.model.fc.out_features

    # -- synthesis --------------------------------------------------------------------------------
    def _masks(self, generators: Sequence[torch.Generator], x: Tensor) -> Tensor:
        P = self.hparams
        return draw_masks(generators, x.shape[-2], x.shape[-1], P["mask"], (P["scale_min"], P["scale_max"]),
                          (P["ratio_min"], P["ratio_max"]), P["cells"]).to(x.device)

    def _synthesis(self, x01: Tensor, y: Tensor, generators: Sequence[torch.Generator], masks: Tensor | None = None,
                   pairs: bool = False, return_masks: bool = False) -> Any:
        """One synthesis per image (pixels in [-1, 1]): mask (the scoring ``mask``, unless given),
        then noise, drawn from each image's generator in that order; the EMA generator."""
        x = x01 * 2 - 1
        if masks is None and self.hparams["mask"] == "shuffle":
            masks = torch.zeros(len(x), *x.shape[-2:], dtype=torch.bool, device=x.device)
            x = shuffle_patches(x, generators, self.hparams["cells"])
        elif masks is None:
            masks = self._masks(generators, x)
        enc, gen = self.networks["encoder"], self.networks["generator"]
        if pairs:  # the second half repeats the first (image and mask): one encoding and noise for both
            half = len(generators) // 2
            mu, logvar = (torch.cat([v, v]) for v in enc(apply_mask(x[:half], masks[:half])))
            eps = torch.stack([torch.randn(mu.shape[1], generator=g) for g in generators[:half]])
            eps = torch.cat([eps, eps])
        else:
            mu, logvar = enc(apply_mask(x, masks))
            eps = torch.stack([torch.randn(mu.shape[1], generator=g) for g in generators])
        z = mu + eps.to(mu.device, mu.dtype) * (0.5 * logvar).exp()
        out = gen(z, y)
        return (out, masks) if return_masks else out

    def labels_for(self, logits: Tensor, labels: Tensor | None = None) -> Tensor:
        """The conditioning labels: the classifier's prediction (from its ``logits``), or ``labels``
        (oracle mode)."""
        if self.hparams["labels"] == "oracle":
            if labels is None:
                raise ValueError(f"{self.name}: labels='oracle' needs the labels (ground truth for ID, random for OOD)")
            return labels.to(logits.device)
        return logits.argmax(dim=1)

    def synthesise(self, x: Tensor, y: Tensor | None = None, keys: Sequence[Key] | None = None) -> tuple[Tensor, Tensor]:
        """``(synthesis in [0, 1], masks)`` for images ``x`` in [0, 1] under labels ``y`` (default:
        the prediction); the first of the ``k`` masks of each sample."""
        def run(x: Tensor, keys: Sequence[Key]) -> tuple[Tensor, Tensor]:
            labels = self.model(x).argmax(1) if y is None else y.to(x.device)
            s, m = self._synthesis(x, labels, sample_generators(self.seed, keys), return_masks=True)
            return ((s + 1) / 2).clamp(0, 1), m
        return self._run(run, x, keys)

    # -- scores -----------------------------------------------------------------------------------
    def scores(self, x: Tensor, keys: Sequence[Key] | None = None, labels: Tensor | None = None) -> dict[str, Tensor]:
        """Every distance of :data:`DISTANCES` (``[N]`` each, averaged over the ``k`` masks) and
        ``cascade`` when calibrated; on the CPU."""
        return self._run(lambda x, keys: self._distances(x, keys, labels), x, keys)

    def _distances(self, x01: Tensor, keys: Sequence[Key], labels: Tensor | None) -> dict[str, Tensor]:
        # one classifier pass per image (features and maps together), one per synthesis
        feats, maps_x = self.model.features_and_maps(x01)
        logits_x = self.model.fc(feats)
        y = self.labels_for(logits_x, labels)
        generators = sample_generators(self.seed, keys)
        x = x01 * 2 - 1
        sums = {d: torch.zeros(len(x01), device=x01.device) for d in DISTANCES}
        for _ in range(self.hparams["k"]):
            s = self._synthesis(x01, y, generators)
            s01 = ((s + 1) / 2).clamp(0, 1)
            sums["pair"] += self.networks["pair"](x, s, y)
            feats_s, maps_s = self.model.features_and_maps(s01)
            sums["perceptual"] += feature_distance(maps_x, maps_s)
            sums["logit"] += (logits_x - self.model.fc(feats_s)).abs().sum(dim=1)
            sums["ssim"] += 1 - ssim(s, x, data_range=2.0)
            sums["pixel"] += (s - x).abs().flatten(1).mean(dim=1)
        out = {d: v / self.hparams["k"] for d, v in sums.items()}
        if "gate" in self.state:
            out["cascade"] = self._cascade(out)
        return out

    def _cascade(self, d: Mapping[str, Tensor]) -> Tensor:
        st = self.state
        return cascade(d[CASCADE[0]], d[CASCADE[1]], float(st["gate"]), st["cascade_mu"], st["cascade_sd"])

    def _score(self, x: Tensor, keys: Sequence[Key]) -> Tensor:
        if self.hparams["distance"] == "cascade" and "gate" not in self.state:
            raise ValueError(f"{self.name}: distance='cascade' needs calibrate(val) first (the gate is set on ID validation)")
        return self._distances(x, keys, None)[self.hparams["distance"]]

    def calibrate(self, val_scores: Mapping[str, Tensor] | Dataset, batch_size: int = 500) -> "MoodCat":
        """Fit the cascade on ID validation: the standardisation of both stages and the first
        stage's ``gate_tpr`` quantile (the 95 %-TPR threshold by default). Takes ``scores()`` of
        the validation images, or the validation Dataset itself."""
        if isinstance(val_scores, Dataset):
            parts: dict[str, list[Tensor]] = {}
            for x, y, keys in _val_batches(val_scores, batch_size):
                labels = y if self.hparams["labels"] == "oracle" else None  # oracle: ground truth for ID
                for k, v in self.scores(x, keys, labels=labels).items():
                    parts.setdefault(k, []).append(v)
            val_scores = {k: torch.cat(v) for k, v in parts.items()}
        first, second = (torch.as_tensor(val_scores[c], dtype=torch.float32) for c in CASCADE)
        mu = torch.stack([first.mean(), second.mean()])
        sd = torch.stack([first.std(), second.std()]).clamp_min(1e-12)
        z1 = (first - mu[0]) / sd[0]
        dev = self.device
        self.state.update({"gate": torch.quantile(z1, self.hparams["gate_tpr"]).to(dev),
                           "cascade_mu": mu.to(dev), "cascade_sd": sd.to(dev)})
        return self

    @torch.no_grad()
    def diagnostics(self, val: Dataset, n: int = 1000, batch_size: int = 500) -> dict[str, float]:
        """Checks on ID validation (the first ``n`` images): ``label_agreement``, the share of
        syntheses under the predicted label that the classifier assigns that label, and
        ``pair_auroc``, the pair discriminator's AUROC between consistent (predicted label) and
        mismatched (a random other label) pairs."""
        from ..metrics import auroc

        self._check_fitted()
        agree, cons, mism = [], [], []
        with eval_mode(self.model):
            for x, _, keys in _val_batches(Subset(val, range(min(n, len(val)))), batch_size):
                x = x.to(self.device)
                y = self.model(x).argmax(1)
                offsets = [torch.randint(1, self.num_classes, (), generator=g)
                           for g in sample_generators(self.seed, [("wrong", k) for k in keys])]
                wrong = (y + torch.stack(offsets).to(y.device)) % self.num_classes
                s = self._synthesis(x, y, sample_generators(self.seed, keys))  # same masks and noise ...
                s_wrong = self._synthesis(x, wrong, sample_generators(self.seed, keys))  # ... for both labels
                agree.append(self.model((s + 1) / 2).argmax(1) == y)
                cons.append(self.networks["pair"](x * 2 - 1, s, y))
                mism.append(self.networks["pair"](x * 2 - 1, s_wrong, wrong))
        return {"label_agreement": torch.cat(agree).float().mean().item(),
                "pair_auroc": float(auroc(torch.cat(cons).cpu().numpy(), torch.cat(mism).cpu().numpy())),
                "n": len(torch.cat(agree))}

    # -- what the pipeline's stages show ----------------------------------------------------------
    def training_summary(self, bench: Any, data: Mapping[str, Any]) -> dict[str, Any]:
        return {"diagnostics": self.diagnostics(bench.val)}

    @torch.no_grad()
    def training_galleries(self, bench: Any, data: Mapping[str, Any]) -> list[Gallery]:
        """Eight ID validation images, their masks, the synthesis under the predicted label and under
        every class (the first ten)."""
        n = min(8, len(bench.val))
        x = torch.stack([bench.val[i][0] for i in range(n)])
        keys = [(VAL_SET, i) for i in range(n)]
        pred = self.model(x.to(self.device)).argmax(1).cpu()
        syn, masks = self.synthesise(x, pred, keys=keys)
        rows = {"input": list(zip(x, pred)), "mask": list(zip(masks[:, None].float(), pred)),
                "predicted label": list(zip(syn, pred))}
        for c, cls in enumerate(bench.classes[:10]):  # a row per class, the first ten at most (ImageNet has 1000)
            rows[cls] = list(zip(self.synthesise(x, torch.full((n,), c), keys=keys)[0], torch.full((n,), c)))
        return [Gallery("samples", (rows,), {"n": n, "class_names": bench.classes})]

    def prepare_scoring(self, val: Any, batch_size: int) -> None:
        self.calibrate(val, batch_size=batch_size)  # the cascade gate, for these scoring parameters

    def ablations(self, evaluation: Mapping[str, Any]) -> list[Ablation]:
        """The released evaluation's labels, on a seeded subset of the test sets (the cascade keeps
        the gate fitted with predicted labels)."""
        return [Ablation("oracle", {"labels": "oracle"}, labels=oracle_labels(self.seed, self.num_classes),
                         subset=evaluation["oracle_subset"])]

    @torch.no_grad()
    def score_galleries(self, bench: Any) -> list[Gallery]:
        """Per set, eight images, their masked input and the synthesis under the predicted label."""
        rows = {}
        for s, ds in {"ID test": bench.test, **bench.ood}.items():
            x = torch.stack([ds[i][0] for i in range(min(8, len(ds)))])  # a small set has fewer
            keys = [(ID_SET if s == "ID test" else s, i) for i in range(len(x))]
            pred = self.model(x.to(self.device)).argmax(1).cpu()
            syn, masks = self.synthesise(x, pred, keys=keys)
            score = self.score(x, keys=keys)
            rows[s] = list(zip(x, pred))
            rows[f"{s}: masked"] = list(zip(torch.where(masks[:, None], 0.5, x), pred))
            rows[f"{s}: synthesis ({', '.join(f'{v:.1f}' for v in score[:3])}…)"] = list(zip(syn, pred))
        return [Gallery("samples", (rows,), {"n": 8, "class_names": bench.classes}, file="syntheses", dpi=70)]

    def describe(self, params: Mapping[str, Any], training: Mapping[str, Any], checks: Mapping[str, Any],
                 costs: Mapping[str, Any]) -> str:
        d = training["diagnostics"]
        return f"""Masked inputs synthesised back under the classifier's predicted label; headline score `moodcat` =
`{self.hparams['distance']}` (fixed in params.yaml before any result). Checks on ID validation: the classifier gives the
conditioning label to **{d['label_agreement'] * 100:.1f} %** of the syntheses; the pair discriminator separates consistent
from mismatched pairs with AUROC **{d['pair_auroc'] * 100:.1f} %**. Training took {training['fit_s']:.0f} s. Scoring cost:
{costs['cost_vs_forward']:.1f} × one classifier forward pass (k = {self.hparams['k']} mask(s), every distance from one
synthesis). Below, every distance computed from the same syntheses (`moodcat[<distance>]`) and `moodcat[oracle]`, the
released evaluation's labels (ground truth for ID, random for OOD): an upper bound that uses test labels,
**never a result**. *perceptual* is an LPIPS-style distance on the ID classifier's own feature maps (no ImageNet
LPIPS/DISTS weights here)."""

    # -- training ---------------------------------------------------------------------------------
    def _build_networks(self, configs: Mapping[str, dict[str, Any]]) -> dict[str, nn.Module]:
        return {"encoder": MaskEncoder(**configs["encoder"]), "generator": ConditionalGenerator(**configs["generator"]),
                "pair": PairDiscriminator(**configs["pair"])}

    def _fit(self, train: Dataset, *, val: Dataset | None, outliers: Any, checkpoint: Any, progress: bool) -> None:
        T = self.train_hparams
        x0 = train[0][0]
        c, size, n_cls = x0.shape[0], x0.shape[-1], self.num_classes
        self.configs = {
            "encoder": {"in_channels": c, "image_size": size, "ndf": T["ndf"], "nz": T["nz"]},
            "generator": {"num_classes": n_cls, "out_channels": c, "image_size": size, "ch": T["g_ch"], "nz": T["nz"],
                          "shared_dim": T["shared_dim"]},
            "pair": {"num_classes": n_cls, "in_channels": c, "image_size": size, "ch": T["pair_ch"]},
        }
        torch.manual_seed(self.seed)
        nets = self._build_networks(self.configs)
        disc = UNetDiscriminator(n_cls, c, size, T["d_ch"], unet=T["discriminator"] == "unet")
        task = _SynthesisTask({"encoder": nets["encoder"], "generator": nets["generator"], "discriminator": disc}, T)
        ckpt = lambda part: None if checkpoint is None else f"{checkpoint}.{part}"  # noqa: E731
        run = json.dumps([self.name, self.configs, T, len(train)])
        self.history = [{"phase": "synthesis", **row} for row in fit(
            task, train, val, epochs=T["epochs"], batch_size=T["batch_size"], seed=self.seed, device=T["device"],
            amp=T["amp"], checkpoint=ckpt("synthesis"), progress=progress, run_id=run, ema={"generator": T["ema"]},
            desc="moodcat synthesis epoch")]
        self.networks = {"encoder": nets["encoder"].eval(), "generator": task.ema["generator"].eval(),
                         "pair": nets["pair"]}
        for net in self.networks.values():
            net.to(self.device)
        pair_task = _PairTask(self, nets["pair"], T["pair_lr"], (T["beta1"], T["beta2"]))
        self.history += [{"phase": "pair", **row} for row in fit(
            pair_task, train, val, epochs=T["pair_epochs"], batch_size=T["batch_size"], seed=self.seed + 1,
            device=T["device"], amp=T["amp"], checkpoint=ckpt("pair"), progress=progress, run_id=run,
            desc="moodcat pair epoch")]
        self.fitted = True
        for net in self.networks.values():
            net.eval()
        if val is not None:
            self.calibrate(val)
