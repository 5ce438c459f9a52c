"""NFlowJS (Grcić, Bevandić & Šegvić, "Dense Out-of-Distribution Detection by Robust Learning on
Synthetic Negative Data", arXiv 2112.12833, Sensors 2024). No official code is public; where the
paper is silent we follow the authors' related code (DenseHybrid: rectangular pasting, β = 0.03,
fine-tuning at lr 1e-5; DenseFlow: the flow's design) and say so.

**Training.** The segmenter θ (initialised from the baseline segmenter) and a normalizing flow γ
(:class:`~ood.models.flows.PatchFlow`, pre-trained by maximum likelihood on random crops of the
inlier training scenes) are trained jointly. Every training scene gets one flow sample of a random
side ``s`` (a multiple of the flow's factor in ``[patch_min, patch_max]``) pasted at a random
place; with ``P`` the pasted pixels and ``I`` the other labelled pixels, both minimise::

    L(θ, γ) = CE_θ(I) + β · L_neg(θ, γ) + λ · NLL_γ(x[P])

* ``CE_θ(I)``: cross-entropy of the inlier pixels of the pasted scene (void and pasted pixels ignored);
* ``L_neg = mean_{p ∈ P} JSD(U ‖ P_θ(y | x̃)_p)``: the Jensen-Shannon divergence between the
  uniform distribution over the C classes and the segmenter's posterior at the pasted pixels, where
  ``x̃`` is the scene with the sample ``x_γ = f_γ⁻¹(z)``, ``z ~ N(0, T²I)`` pasted in. Minimising it
  over θ makes the segmenter uncertain on negatives; ``x_γ`` is differentiable in γ, so minimising
  it over γ moves the samples to where the segmenter already hesitates, while
* ``NLL_γ(x[P])``, the flow's negative log-likelihood (bits/dim) of the inlier content the patch
  overwrites, keeps them close to the inliers: together they push the samples towards the *border*
  of the inlier distribution (the paper's argument), not away from the data.

(The CE of inlier pixels next to a patch also depends on the patch through the segmenter's
receptive field; one joint backward pass lets that gradient reach γ too, as minimising the sum over
(θ, γ) does.) One optimiser, two learning rates (``lr`` for θ, ``flow_lr`` for γ).

**Score.** Per pixel ``-JSD(U ‖ P_θ(y | x))`` (a confident posterior is far from uniform, so the
sign makes higher = more OOD); the image score is the mean of the map. ``criterion`` scores the
same fine-tuned segmenter with the dense baselines' entropy or max-softmax instead (ablations).
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any, ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

from ..models.flows import PatchFlow
from ..train import IGNORE_INDEX, Task, _random_crop, _random_hflip, fit
from .base import TRAINING, DenseDetector, Param, TrainedDetector
from .dense import entropy_score
from .method import Gallery, Method
from .posthoc import msp_score

__all__ = ["NFlowJS", "jsd_to_uniform", "paste_patches"]


def jsd_to_uniform(logits: Tensor, dim: int = 1) -> Tensor:
    """Jensen-Shannon divergence (nats) between the uniform distribution over the classes and the
    softmax of ``logits`` along ``dim``: ``½ KL(U ‖ M) + ½ KL(P ‖ M)``, ``M = (U + P) / 2``.
    Zero for a uniform posterior, at most ``ln 2``."""
    logp = torch.log_softmax(logits.float(), dim=dim)
    c = logits.shape[dim]
    p = logp.exp()
    logm = torch.log((p + 1.0 / c) / 2)
    kl_um = (1.0 / c) * (-math.log(c) - logm)
    kl_pm = p * (logp - logm)
    return 0.5 * (kl_um + kl_pm).sum(dim=dim)


def paste_patches(x: Tensor, patches: Tensor, tops: Tensor, lefts: Tensor) -> tuple[Tensor, Tensor]:
    """Paste ``patches[i]`` (``[N, C, s, s]``) into ``x[i]`` with its top-left corner at
    ``(tops[i], lefts[i])``. Returns the pasted images (differentiable in ``patches``) and the
    boolean mask ``[N, H, W]`` of the pasted pixels."""
    n, _, h, w = x.shape
    s_h, s_w = patches.shape[-2:]
    canvases, masks = [], []
    for i in range(n):
        t, l = int(tops[i]), int(lefts[i])
        if t < 0 or l < 0 or t + s_h > h or l + s_w > w:
            raise ValueError(f"patch {i} at ({t}, {l}) of size {s_h}x{s_w} does not fit in {h}x{w}")
        pad = (l, w - l - s_w, t, h - t - s_h)
        canvases.append(F.pad(patches[i], pad))
        masks.append(F.pad(torch.ones(s_h, s_w, dtype=torch.bool, device=x.device), pad))
    mask = torch.stack(masks)
    return torch.where(mask.unsqueeze(1), torch.stack(canvases), x), mask


def _random_sides(low: int, high: int, factor: int) -> int:
    """A patch side, uniform over the multiples of ``factor`` in [low, high] (torch's global RNG)."""
    sides = list(range(math.ceil(low / factor) * factor, high + 1, factor))
    return sides[int(torch.randint(len(sides), ()))]


def _crop(x: Tensor, tops: Tensor, lefts: Tensor, side: int) -> Tensor:
    return torch.stack([x[i, :, int(t):int(t) + side, int(l):int(l) + side] for i, (t, l) in enumerate(zip(tops, lefts))])


def _positions(n: int, h: int, w: int, side: int) -> tuple[Tensor, Tensor]:
    return torch.randint(h - side + 1, (n,)), torch.randint(w - side + 1, (n,))


class _FlowPretraining(Task):
    """Maximum likelihood of the flow on random square crops of inlier training scenes."""

    def __init__(self, flow: PatchFlow, T: Mapping[str, Any]):
        self.networks, self.T = {"flow": flow}, T

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"flow": torch.optim.Adam(self.networks["flow"].parameters(), lr=self.T["flow_lr"])}

    def training_step(self, batch: Any, step: Any) -> dict[str, float]:
        x = batch[0]
        flow = self.networks["flow"]
        side = _random_sides(self.T["patch_min"], self.T["patch_max"], flow.factor)
        crops = _crop(x, *_positions(len(x), *x.shape[-2:], side), side)
        with step.autocast():
            nll = flow.nll_bits(crops).mean()
        step.update(nll, "flow")
        return {"nll_bits": nll.item()}


class _JointTraining(Task):
    """The NFlowJS objective (module docstring): segmenter and flow, one optimiser."""

    def __init__(self, segmenter: nn.Module, flow: PatchFlow, T: Mapping[str, Any], hflip: bool):
        self.networks, self.T, self.hflip = {"segmenter": segmenter, "flow": flow}, T, hflip

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"joint": torch.optim.Adam([
            {"params": self.networks["segmenter"].parameters(), "lr": self.T["lr"]},
            {"params": self.networks["flow"].parameters(), "lr": self.T["flow_lr"]}])}

    def schedulers(self, optimizers: dict[str, torch.optim.Optimizer], total_steps: int) -> dict[str, Any]:
        """``cosine``: both learning rates annealed by the factor that takes ``lr`` to ``lr_min`` over
        the joint steps, as DenseHybrid's fine-tuning (``lr_min + (lr − lr_min)(1 + cos πt/T)/2``)."""
        if self.T["schedule"] != "cosine":
            return {}
        floor = self.T["lr_min"] / self.T["lr"]
        factor = lambda step: floor + (1 - floor) * (1 + math.cos(math.pi * step / total_steps)) / 2  # noqa: E731
        return {"joint": torch.optim.lr_scheduler.LambdaLR(optimizers["joint"], factor)}

    def train_mode(self) -> None:
        """``bn: frozen`` keeps the segmenter's BatchNorm statistics (learnt on clean scenes) as they
        are: scenes full of flow samples must not move them."""
        super().train_mode()
        if self.T["bn"] == "frozen":
            for m in self.networks["segmenter"].modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def prepare(self, batch: Any, device: torch.device) -> Any:
        x, y = batch
        if self.hflip and self.networks["segmenter"].training:  # as the baseline segmenter was trained
            x, y = _random_hflip(x, y)
        if self.T["crop"] and self.networks["segmenter"].training:  # negatives are pasted into the crop
            x, y = _random_crop(x, y, self.T["crop"])
        return x.to(device), y.to(device)

    def losses(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        seg, flow, T = self.networks["segmenter"], self.networks["flow"], self.T
        side = _random_sides(T["patch_min"], T["patch_max"], flow.factor)
        tops, lefts = _positions(len(x), *x.shape[-2:], side)
        nll = flow.nll_bits(_crop(x, tops, lefts, side)).mean()  # the inlier content the patch overwrites
        patches = flow.sample(len(x), side, temperature=T["temperature"])
        pasted, neg = paste_patches(x, patches, tops.to(x.device), lefts.to(x.device))
        logits = seg(pasted)
        ce = F.cross_entropy(logits, y.masked_fill(neg, IGNORE_INDEX), ignore_index=IGNORE_INDEX)
        jsd = jsd_to_uniform(logits).masked_select(neg).mean()
        return {"loss": ce + T["beta"] * jsd + T["lam"] * nll, "ce": ce, "jsd": jsd, "nll_bits": nll}

    def training_step(self, batch: Any, step: Any) -> dict[str, float]:
        with step.autocast():
            parts = self.losses(*batch)
        step.update(parts["loss"], "joint")
        return {k: v.item() for k, v in parts.items()}

    def validation_step(self, batch: Any) -> dict[str, float]:
        x, y = batch  # clean ID validation scenes: is segmentation kept?
        logits = self.networks["segmenter"](x)
        valid = y != IGNORE_INDEX
        return {"ce": F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX).item(),
                "acc": float(((logits.argmax(1) == y) & valid).sum() / valid.sum().clamp(min=1))}


class NFlowJS(TrainedDetector, DenseDetector):
    """NFlowJS on a segmenter: ``fit(scenes_train, val=scenes_val)`` trains the flow and fine-tunes
    a copy of the segmenter; ``score_map`` is ``-JSD(U ‖ posterior)`` per pixel; ``segment(x)``
    gives the fine-tuned segmenter's logits (its mIoU is reported next to the baseline's)."""

    name: ClassVar[str] = "nflowjs"
    # its training reports the fine-tuned segmenter's mIoU with segmenter.batch_size
    method: ClassVar[Method] = Method(benchmark="dense_benchmark", fine_tunes=True, reads=("segmenter.batch_size",),
                                        title="NFlowJS: its segmenter and anomaly maps")
    params: ClassVar[dict[str, Param]] = {
        # The paper's score is the JSD criterion; the others are ablations on the same segmenter.
        "criterion": Param("jsd", str, choices=("jsd", "entropy", "msp")),
    }
    train_params: ClassVar[dict[str, Param]] = {
        "epochs": Param(1, int, 1, 10_000),                    # joint fine-tuning epochs over `images`
        "images": Param(None, int, 1, 10_000_000, optional=True),  # seeded subset of training scenes (None = all)
        "batch_size": Param(16, int, 1, 65_536),
        "lr": Param(1e-5, float, 0.0, 1.0, low_open=True),    # segmenter fine-tuning (DenseHybrid: 1e-5)
        "schedule": Param("constant", str, choices=("constant", "cosine")),  # joint-phase learning rates
        "lr_min": Param(0.0, float, 0.0, 1.0),                # where cosine ends (DenseHybrid's lr_min), as a segmenter lr
        "bn": Param("train", str, choices=("train", "frozen")),  # the segmenter's BatchNorm statistics in the joint phase
        "flow_lr": Param(1e-4, float, 0.0, 1.0, low_open=True),  # flow (pre-training and joint)
        "beta": Param(0.03, float, 0.0, 100.0),                # weight of L_neg (paper / DenseHybrid: 0.03)
        "lam": Param(1.0, float, 0.0, 100.0),                  # weight of the flow's NLL (bits/dim)
        "temperature": Param(1.0, float, 0.0, 10.0, low_open=True),  # of the flow's Gaussian base when sampling
        "patch_min": Param(16, int, 1, 100_000),               # patch sides (paper: 16-216 px at 1024x2048)
        "patch_max": Param(216, int, 1, 100_000),
        "flow_epochs": Param(1, int, 0, 10_000),               # flow pre-training epochs over `flow_images`
        "flow_images": Param(None, int, 1, 10_000_000, optional=True),
        "levels": Param(3, int, 1, 6),                         # flow scales (squeeze factor 2**levels)
        "steps": Param(8, int, 1, 64),                         # (ActNorm, 1x1 conv, coupling) per scale
        "hidden": Param(64, int, 4, 4096),                     # coupling-net width
        "hflip": Param(True, bool),                            # as the baseline segmenter's training
        "crop": Param(None, int, 8, 100_000, optional=True),   # joint training on random crops (None = whole scenes)
        **TRAINING,
    }

    # -- networks ---------------------------------------------------------------------------------
    def _build_networks(self, configs: Mapping[str, dict[str, Any]]) -> dict[str, nn.Module]:
        # The fine-tuned segmenter has the baseline's architecture: a copy, weights loaded afterwards.
        return {"segmenter": copy.deepcopy(self.model), "flow": PatchFlow(**configs["flow"])}

    @property
    def segmenter(self) -> nn.Module:
        return self.networks["segmenter"]

    @property
    def flow(self) -> PatchFlow:
        return self.networks["flow"]  # type: ignore[return-value]

    def segment(self, x: Tensor) -> Tensor:
        """Logits ``[N, K, H, W]`` of the fine-tuned segmenter, on the CPU as float32."""
        return self._run(lambda v: self.segmenter(v), x, None)

    @torch.no_grad()
    def negatives(self, x: Tensor, side: int, seed: int = 0) -> tuple[Tensor, Tensor]:
        """Scenes ``x`` with one flow sample of side ``side`` pasted at a random place each, as in
        training (drawn from ``seed``): ``(pasted scenes, mask of the pasted pixels)`` on the CPU."""
        g = torch.Generator().manual_seed(seed)
        tops, lefts = (torch.randint(n - side + 1, (len(x),), generator=g) for n in x.shape[-2:])
        patches = self.flow.sample(len(x), side, self.train_hparams["temperature"], generator=g)
        pasted, mask = paste_patches(x.to(patches.device), patches, tops, lefts)
        return pasted.cpu(), mask.cpu()

    # -- what the pipeline's stages show ----------------------------------------------------------
    @property
    def own_model(self) -> nn.Module:
        return self.segmenter

    @torch.no_grad()
    def training_galleries(self, bench: Any, data: Mapping[str, Any]) -> list[Gallery]:
        """Flow samples at three patch sides next to scene crops of the same side; training scenes with
        a flow negative pasted in, their anomaly maps and the fine-tuned segmenter's labels."""
        T, factor = self.train_hparams, self.flow.factor
        sides = sorted({T["patch_min"] + (-T["patch_min"]) % factor, (T["patch_min"] + T["patch_max"]) // 2 // factor * factor,
                        T["patch_max"] // factor * factor})
        g = torch.Generator().manual_seed(self.seed)
        rows = {}
        for s in sides:
            samples = self.flow.sample(8, s, T["temperature"], generator=g).cpu()
            rows[f"flow {s} px"] = [(v, i) for i, v in enumerate(samples)]
            o = min(20, min(bench.image_size) - s)  # a crop inside the scene
            rows[f"scene crop {s} px"] = [(bench.train[i][0][:, o:o + s, o:o + s], i) for i in range(min(8, len(bench.train)))]
        shown = [bench.train[i] for i in range(min(6, len(bench.train)))]
        x = torch.stack([image for image, _ in shown])
        y = torch.stack([target for _, target in shown])
        pasted, mask = self.negatives(x, sides[-1], seed=self.seed)
        return [Gallery("samples", (rows,), {"n": 8}),
                Gallery("dense", (pasted, mask.numpy().astype("uint8"), {"NFlowJS (-JSD)": self.score_map(pasted).numpy()}),
                        {"n": len(shown), "title": "Training scenes with flow negatives"}),
                Gallery("labels", (pasted, y.masked_fill(mask, 255).numpy(), self.segment(pasted).argmax(1).numpy(),
                                   bench.classes))]

    def describe(self, params: Mapping[str, Any], training: Mapping[str, Any], checks: Mapping[str, Any],
                 costs: Mapping[str, Any]) -> str:
        T = self.train_hparams
        return f"""NFlowJS fine-tunes a copy of the segmenter with flow-generated negatives pasted into the training scenes
({T['patch_min']}–{T['patch_max']} px, β = {T['beta']}, λ = {T['lam']}) and scores −JSD(uniform ‖ posterior) per pixel
(`nflowjs.score.criterion` = `{self.hparams['criterion']}`). Its segmenter's mIoU on clean test scenes:
**{training['miou'] * 100:.1f} %** (baseline segmenter {training['miou_baseline'] * 100:.1f} %,
{100 * (training['miou'] - training['miou_baseline']):+.1f} points). Flow: {training['parameters']['flow']:,} parameters;
training (flow pre-training and joint fine-tuning) {training['fit_s']:.0f} s. Scoring costs one forward pass of the
fine-tuned segmenter (cost table below). No auxiliary outliers: the negatives are synthetic."""

    # -- scores -----------------------------------------------------------------------------------
    def _score_map(self, x: Tensor) -> Tensor:
        logits = self.segmenter(x)
        if self.criterion == "jsd":
            return -jsd_to_uniform(logits)
        return entropy_score(logits) if self.criterion == "entropy" else msp_score(logits)

    # -- training ---------------------------------------------------------------------------------
    def _subset(self, data: Dataset, size: int | None, salt: int) -> Dataset:
        if size is None or size >= len(data):
            return data
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(self.seed + salt))
        return Subset(data, sorted(order[:size].tolist()))

    def _fit(self, train: Dataset, *, val: Dataset | None, outliers: Any, checkpoint: Any, progress: bool) -> None:
        T = self.train_hparams
        x0 = train[0][0]
        c, h, w = x0.shape
        self.configs = {"flow": {"channels": c, "levels": T["levels"], "steps": T["steps"], "hidden": T["hidden"]}}
        factor = 2 ** T["levels"]
        lowest = math.ceil(T["patch_min"] / factor) * factor  # the smallest side the flow can sample
        side = min(h, w, T["crop"] or h)  # what the joint training sees
        if T["schedule"] == "cosine" and T["lr_min"] > T["lr"]:
            raise ValueError(f"{self.name}: lr_min {T['lr_min']} must not exceed lr {T['lr']} (cosine anneals lr down to it)")
        if T["crop"] and T["crop"] > min(h, w):
            raise ValueError(f"{self.name}: crop {T['crop']} is larger than the {h}x{w} scenes: choose crop <= "
                             f"{min(h, w)} or none")
        if lowest > T["patch_max"] or T["patch_max"] > side:
            raise ValueError(f"{self.name}: patch sides [{T['patch_min']}, {T['patch_max']}] must hold a multiple "
                             f"of {factor} (the flow's factor 2**levels) and stay within the scene size {side}")
        torch.manual_seed(self.seed)
        self.networks = self._build_networks(self.configs)
        for p in self.segmenter.parameters():
            p.requires_grad_(True)
        ckpt = lambda part: None if checkpoint is None else f"{checkpoint}.{part}"  # noqa: E731
        run = json.dumps([self.name, self.configs, T])
        common = dict(seed=self.seed, device=T["device"], amp=T["amp"], progress=progress, run_id=run)
        history = []
        if T["flow_epochs"]:
            history += [{"phase": "flow", **row} for row in fit(
                _FlowPretraining(self.flow, T), self._subset(train, T["flow_images"], 1), epochs=T["flow_epochs"],
                batch_size=T["batch_size"], checkpoint=ckpt("flow"), desc="flow epoch", **common)]
        history += [{"phase": "joint", **row} for row in fit(
            _JointTraining(self.segmenter, self.flow, T, T["hflip"]), self._subset(train, T["images"], 2), val,
            epochs=T["epochs"], batch_size=T["batch_size"], checkpoint=ckpt("joint"), desc="nflowjs epoch",
            val_batch_size=T["batch_size"] if T["crop"] else None, **common)]
        self.history = history
        for net in self.networks.values():
            net.to(self.device).eval()
