"""Heatmap OOD (Hornauer & Belagiannis, "Heatmap-based Out-of-Distribution Detection", WACV 2023,
arXiv 2211.08115; official code jhornauer/heatmap_ood).

A decoder maps the frozen classifier's penultimate features ``z`` (min-max normalised with one
global scalar min and max over every entry of the ID training features) concatenated with a one-hot
of the predicted class to an image-sized heatmap ``h(x)`` in [-1, 1]. Training targets, in the
official [-1, 1] pixel range (``x' = 2x - 1``): an ID image's target is the image itself, so
``h`` should vanish; an auxiliary outlier's target is its *prototype*, the ID training image of
the same predicted class nearest to it in raw (unnormalised) feature space (Euclidean), so ``h``
regresses ``prototype − x``. Loss per image ``Σ_pixels (1 + 5|t|)(x' + h(x) − t)²`` (the weight
depends on the pixel range: it is the official one because the range is). Optimiser Adam, lr 2e-4,
betas (0.5, 0.999), batch 200. Score: the mean over pixels of the max over channels of ``|h|``;
the map itself (``score_map``) localises what makes an image OOD.

Two training options beyond the official defaults, for localisation (both off by default, as the
official code; the embedded profile turns them on in params.yaml): ``fw_layers`` (official option)
adds the classifier's spatial feature maps to the decoder, and ``pasted`` (ours) adds ID training
images with one auxiliary rectangle pasted in, whose target is the clean image, so ``h`` is taught
to vanish outside the rectangle. With whole-image outliers only the decoder has no reason to say
*where* an image is OOD.

The classifier never changes and the decoder is its only consumer, so features, feature maps
(float16), predictions and targets are computed once before training: the decoder's training steps
are then the whole cost.
"""

from __future__ import annotations

import json
import warnings
import zlib
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor, nn
from torch.utils.data import ConcatDataset, Dataset, TensorDataset

from ..data.localisation import make_localisation
from ..models.decoders import HeatmapDecoder
from ..train import Task, fit
from .base import TRAINING, DenseDetector, Param, TrainedDetector, eval_mode
from .method import Gallery, Method

__all__ = ["HeatmapOOD", "nearest_prototypes"]


def nearest_prototypes(z_query: Tensor, y_query: Tensor, z_ref: Tensor, y_ref: Tensor, chunk: int = 2048) -> Tensor:
    """Index into ``z_ref`` of the nearest reference (Euclidean) with the same label, per query.

    A query whose label no reference has (a class the classifier never predicts on ID training
    data, which only an undertrained classifier shows) falls back to the nearest reference of any
    label, with a warning; the official code stops there on an empty distance matrix."""
    out = torch.empty(len(z_query), dtype=torch.long)
    orphans = []
    for c in y_query.unique().tolist():
        ref = torch.nonzero(y_ref == c).flatten()
        queries = torch.nonzero(y_query == c).flatten()
        if len(ref) == 0:
            orphans.append(c)
            ref = torch.arange(len(z_ref))
        for i in range(0, len(queries), chunk):
            q = queries[i:i + chunk]
            out[q] = ref[torch.cdist(z_query[q], z_ref[ref]).argmin(dim=1)]
    if orphans:
        n = int(torch.isin(y_query, torch.tensor(orphans)).sum())
        warnings.warn(f"heatmap: no ID training image is predicted as class {', '.join(map(str, orphans))}; "
                      f"{n} outlier(s) predicted as such take the nearest ID training image of any class "
                      "as prototype (is the classifier trained?)", stacklevel=2)
    return out


class _DecoderTask(Task):
    """Trains the decoder on precomputed ``(condition, label, image, target, *raw feature maps)``
    batches; ``condition`` normalises the maps (``fw_layers`` > 1) as the features."""

    def __init__(self, decoder: HeatmapDecoder, lr: float, betas: tuple[float, float], condition: Any):
        self.networks = {"decoder": decoder}
        self.lr, self.betas, self.condition = lr, betas, condition

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"decoder": torch.optim.Adam(self.networks["decoder"].parameters(), lr=self.lr, betas=self.betas)}

    def loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        z, y, x, t, *maps = batch
        h = self.networks["decoder"](z, y, [self.condition(m.float()) for m in maps])
        return heatmap_loss(h, x, t)

    def training_step(self, batch: Any, step: Any) -> dict[str, float]:
        with step.autocast():
            loss = self.loss(batch)
        step.update(loss, "decoder")
        return {"loss": loss.item()}

    def validation_step(self, batch: Any) -> dict[str, float]:
        return {"loss": self.loss(batch).item()}


def heatmap_loss(h: Tensor, x: Tensor, t: Tensor) -> Tensor:
    """Official weighted squared error, summed over pixels, averaged over images (pixels in [-1, 1])."""
    return ((1 + 5 * t.abs()) * (x + h - t) ** 2).flatten(1).sum(dim=1).mean()


class HeatmapOOD(TrainedDetector, DenseDetector):
    """Heatmap OOD on a frozen classifier: ``fit(train, val=..., outliers=...)``, ``score``,
    ``score_map`` (``|h|`` max over channels, ``[N, H, W]``) and ``heatmap`` (signed ``h``)."""

    name: ClassVar[str] = "heatmap"
    # the heatmap also localises (<benchmark>_loc)
    method: ClassVar[Method] = Method(localises=True, title="Heatmap OOD: heatmaps and localisation")
    needs_outliers: ClassVar[bool] = True
    params: ClassVar[dict[str, Param]] = {
        # Official evaluation: mean over pixels of the max over channels of |h|; "max" is an ablation.
        "reduce": Param("mean", str, choices=("mean", "max")),
    }
    train_params: ClassVar[dict[str, Param]] = {
        "epochs": Param(150, int, 1, 10_000),            # official: 150
        "batch_size": Param(200, int, 1, 65_536),         # official: 200
        "lr": Param(2e-4, float, 0.0, 1.0, low_open=True),  # official: Adam 2e-4
        "beta1": Param(0.5, float, 0.0, 1.0, high_open=True),  # official: betas (0.5, 0.999)
        "beta2": Param(0.999, float, 0.0, 1.0, high_open=True),
        "width": Param(512, int, 8, 4096),               # official CIFAR-10: 512 -> 256 -> 128 -> 64
        "code": Param(100, int, 1, 4096),                # official CIFAR-10: fc to 100
        "outliers": Param(10_000, int, 1, 10_000_000),   # official: 10k TinyImages outliers
        # official option: feature maps added to decoder blocks 1..fw_layers-1 (default 1: none)
        "fw_layers": Param(1, int, 1, 4),
        # ours (official: 0): ID training images with one auxiliary rectangle pasted in, target the
        # clean image, so h learns *where* an image is OOD (see _pasted)
        "pasted": Param(0, int, 0, 10_000_000),
        **TRAINING,
    }

    # -- features ---------------------------------------------------------------------------------
    def _encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Raw features and the feature maps the decoder adds (``fw_layers`` > 1), one classifier pass."""
        if not self.configs.get("maps"):
            return self.model.features(x), []
        z, maps = self.model.features_and_maps(x)
        return z, [maps[i] for i in self.configs["maps"]]

    def _condition(self, z: Tensor) -> Tensor:
        lo, hi = self.state["z_min"], self.state["z_max"]
        return (z - lo) / (hi - lo)

    def heatmap(self, x: Tensor) -> Tensor:
        """The signed heatmap ``h(x)`` ``[N, C, H, W]`` in [-1, 1] (so ``x' + h`` is the decoder's
        reconstruction towards the prototype, ``x' = 2x − 1``); on the CPU as float32."""
        return self._run(self._heatmap, x, None)

    def _heatmap(self, x: Tensor) -> Tensor:
        z, maps = self._encode(x)
        y = self.model.fc(z).argmax(dim=1)
        return self.networks["decoder"](self._condition(z), y, [self._condition(m) for m in maps])

    def _score_map(self, x: Tensor) -> Tensor:
        return self._heatmap(x).abs().amax(dim=1)

    def _score(self, x: Tensor) -> Tensor:
        m = self._score_map(x).flatten(1)
        return m.mean(dim=1) if self.reduce == "mean" else m.amax(dim=1)

    # -- what the pipeline's stages show ----------------------------------------------------------
    def training_summary(self, bench: Any, data: Mapping[str, Any]) -> dict[str, Any]:
        return {"outliers": len(data["outliers"])}

    def training_galleries(self, bench: Any, data: Mapping[str, Any]) -> list[Gallery]:
        """Ten auxiliary outliers, their ID prototypes (the regression targets), the decoder's
        reconstruction x + h(x) and |h|."""
        idx = torch.arange(min(10, len(data["outliers"])))
        x_out = data["outliers"].tensors[0][idx]
        proto = torch.stack([bench.train[int(i)][0] for i in self.state["prototypes"][idx].cpu()])
        h = self.heatmap(x_out)
        recon = ((x_out * 2 - 1 + h).clamp(-1, 1) + 1) / 2
        rows = {"outlier": x_out, "prototype": proto, "x + h(x)": recon, "|h|": h.abs().amax(1, keepdim=True)}
        return [Gallery("samples", ({k: list(zip(v, idx)) for k, v in rows.items()},), {"n": len(idx)})]

    def score_galleries(self, bench: Any) -> list[Gallery]:
        """Heatmaps of the first eight images of ID test and every OOD set."""
        rows = {}
        for s, ds in {"ID test": bench.test, **bench.ood}.items():
            x = torch.stack([ds[i][0] for i in range(min(8, len(ds)))])  # a small set has fewer
            rows[s] = (x, self.score_map(x).numpy())
        return [Gallery("heatmaps", (rows,), {"n": 8}, file="sets")]

    def describe(self, params: Mapping[str, Any], training: Mapping[str, Any], checks: Mapping[str, Any],
                 costs: Mapping[str, Any]) -> str:
        loc = f"{params['benchmark']['name']}_loc"
        return (f"Heatmaps over ID and OOD images, and localisation on `{loc}` ({params['localisation']['n']} ID test "
                "images with one rectangle pasted from an OOD set; pixel metrics over the images' pixels, void ignored). "
                "`class_mean_diff` is the naive map |x − mean ID image of the predicted class|. The decoder "
                f"({sum(training['parameters'].values()):,} parameters) trained on {training['id_images']:,} ID and "
                f"{training['outliers']:,} auxiliary images in {training['fit_s']:.0f} s"
                + (f", and on {self.train_hparams['pasted']:,} ID training images with one auxiliary rectangle pasted in "
                   "(target: the clean image; `heatmap.train.pasted`, not in the paper), the way the localisation set "
                   "pastes OOD rectangles: its localisation result is measured on the kind of image it was taught to "
                   "localise, and this also helps it on near-OOD." if self.train_hparams["pasted"] else "."))

    # -- training ---------------------------------------------------------------------------------
    def _build_networks(self, configs: Mapping[str, dict[str, Any]]) -> dict[str, nn.Module]:
        return {"decoder": HeatmapDecoder(**configs["decoder"])}

    def _fit(self, train: Dataset, *, val: Dataset | None, outliers: Dataset, checkpoint: Any,
             progress: bool) -> None:
        T = self.train_hparams
        batch = 512
        if len(outliers) == 0:
            raise ValueError(f"{self.name}: the outlier set is empty")
        # Images stay in their datasets (ImageNet's 1.28M would be 770 GB as one tensor); only the
        # classifier's outputs of every image are kept, from one pass.
        probe = torch.stack([_image(train, i) for i in range(min(2, len(train)))])
        c, size = probe.shape[1], probe.shape[-1]
        self.configs = {"decoder": {"feature_dim": self.model.fc.in_features, "num_classes": self.model.fc.out_features,
                                    "out_channels": c, "image_size": size, "width": T["width"], "code": T["code"]},
                        "maps": self._map_indices(probe.to(self.device), T["fw_layers"], size)}
        x_p, source = self._pasted(train, outliers, T["pasted"])
        n_id, n_out = len(train), len(outliers)
        images = ConcatDataset([train, outliers, TensorDataset(x_p)])
        # One classifier pass over every training image: the epochs then cost the decoder only.
        z_all, maps_all, lo, hi = self._encode_all(images, batch, stats_rows=n_id)
        y_all = self.model.fc(z_all.to(self.device)).argmax(1).cpu()
        # One global scalar min and max over every entry of the forwarded ID-train features (and
        # feature maps, with fw_layers > 1), as the official get_norm_values.
        self.state = {"z_min": lo.reshape(()).to(self.device), "z_max": hi.reshape(()).to(self.device)}
        proto = nearest_prototypes(z_all[n_id:n_id + n_out], y_all[n_id:n_id + n_out], z_all[:n_id], y_all[:n_id])
        self.state["prototypes"] = proto.to(self.device)  # index into ID train, per outlier (for the notebook)
        cond = lambda z: self._condition(z.to(self.device)).cpu()  # noqa: E731
        # targets: an ID image itself, an outlier's nearest prototype, a composite's clean source
        data = _DecoderData(images, train, torch.cat([torch.arange(n_id), proto.cpu(), source]), cond(z_all), y_all,
                            maps_all)
        val_data = None
        if val is not None:  # ID validation: the loss towards a zero heatmap (a held-out sanity check)
            z_val, maps_val, _, _ = self._encode_all(val, batch)
            val_data = _DecoderData(val, val, torch.arange(len(val)), cond(z_val),
                                    self.model.fc(z_val.to(self.device)).argmax(1).cpu(), maps_val)
        torch.manual_seed(self.seed)
        self.networks = self._build_networks(self.configs)
        task = _DecoderTask(self.networks["decoder"], T["lr"], (T["beta1"], T["beta2"]), self._condition)
        self.history = fit(task, data, val_data, epochs=T["epochs"], batch_size=T["batch_size"], seed=self.seed,
                           device=T["device"], amp=T["amp"], checkpoint=checkpoint, progress=progress,
                           run_id=json.dumps([self.name, self.configs, T, len(data)]), desc="heatmap epoch")
        self.networks["decoder"].to(self.device).eval()

    @torch.no_grad()
    def _encode_all(self, images: Dataset, batch: int, stats_rows: int = 0) -> tuple[Tensor, list[Tensor], Tensor, Tensor]:
        """Raw features (float32) and decoder feature maps (float16, kept for every epoch: 19 KB an
        image on fmnist6) of every image, and the float32 min and max over the features and maps
        of the first ``stats_rows`` images."""
        zs, maps, lo, hi = [], [], torch.tensor(float("inf")), torch.tensor(float("-inf"))
        with eval_mode(self.model):
            for i, x in zip(range(0, len(images), batch), _batches(images, batch)):
                z, fm = self._encode(x.to(self.device))
                if i == 0:
                    maps = [torch.empty(len(images), *m.shape[1:], dtype=torch.float16) for m in fm]
                for buf, m in zip(maps, fm):
                    buf[i:i + len(m)] = m.cpu()
                zs.append(z.float().cpu())
                for v in (z, *fm) if i < stats_rows else ():
                    v = v[:stats_rows - i].float().cpu()
                    lo, hi = torch.minimum(lo, v.min()), torch.maximum(hi, v.max())
        return torch.cat(zs), maps, lo, hi

    def _pasted(self, train: Dataset, outliers: Dataset, n: int) -> tuple[Tensor, Tensor]:
        """``n`` ID training images, each with one rectangle of an auxiliary outlier pasted at the same
        place (sides 1/7 to 5/7 of the image, so not the localisation set's range), and the index
        of each one's clean source image. The clean image is its target: the closest ID image by
        construction, so ``h`` regresses the difference inside the rectangle and zero elsewhere.
        The rectangles are drawn from their own stream (not the localisation set's)."""
        first = _image(train, 0)
        if n == 0:
            return first[None][:0], torch.zeros(0, dtype=torch.long)
        size = first.shape[-1]
        stream = zlib.crc32(f"heatmap-pasted-{self.seed}".encode())
        made = make_localisation(train, {"auxiliary": outliers}, n, stream, side=(max(1, size // 7), size * 5 // 7))
        return made.tensors[0], made.id_index

    def _map_indices(self, probe: Tensor, fw_layers: int, size: int) -> list[int]:
        """Which of the classifier's feature maps go to decoder blocks 1..fw_layers-1: for each
        block, the deepest map whose shape equals the block's output (as the official encoders)."""
        if fw_layers == 1:
            return []
        if not hasattr(self.model, "features_and_maps"):
            raise ValueError(f"{self.name}: fw_layers > 1 needs a classifier with features_and_maps(x) "
                             "(ood.models.classifiers.Classifier)")
        with torch.no_grad():
            shapes = [tuple(m.shape[1:]) for m in self.model.feature_maps(probe)]
        wanted = HeatmapDecoder(1, 1, 1, size, self.train_hparams["width"], 1).block_shapes(size)[:fw_layers - 1]
        indices = []
        for shape in wanted:
            if shape not in shapes:
                raise ValueError(f"{self.name}: fw_layers={fw_layers} needs a classifier feature map of shape {shape} "
                                 f"for a decoder block; the classifier has {shapes} (choose width to match)")
            indices.append(shapes.index(shape))
        return indices


def _image(dataset: Dataset, i: int) -> Tensor:
    return dataset[i][0].float()


def _batches(dataset: Dataset, batch: int):
    """The images of ``dataset`` in order, ``batch`` at a time."""
    for i in range(0, len(dataset), batch):
        yield torch.stack([_image(dataset, j) for j in range(i, min(i + batch, len(dataset)))])


class _DecoderData(Dataset):
    """The decoder's training items: conditioned code, predicted class, image and target in
    [-1, 1] (the official pixel range), and the decoder's feature maps. The codes and maps of every
    image are kept (one classifier pass); the images are read from their datasets on access, the
    target of item ``i`` being image ``target_index[i]`` of ``targets``."""

    def __init__(self, images: Dataset, targets: Dataset, target_index: Tensor, codes: Tensor, labels: Tensor,
                 maps: list[Tensor]):
        self.images, self.targets, self.target_index = images, targets, target_index
        self.codes, self.labels, self.maps = codes, labels, maps

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        image, target = _image(self.images, i), _image(self.targets, int(self.target_index[i]))
        return (self.codes[i], self.labels[i], image * 2 - 1, target * 2 - 1, *(m[i] for m in self.maps))
