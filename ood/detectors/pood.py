"""pytorch-ood's post-hoc detectors by name, on this project's ``features``/``fc`` classifier.

One adapter (:class:`PytorchOOD`) turns a pytorch-ood 0.4.0 detector into a post-hoc baseline of
this project: parameters validated from its own :class:`~ood.detectors.base.Param` spec, fitted on
ID training features, scored from penultimate features (so the ``posthoc`` stage runs the network
once for all of them), higher = more OOD (pytorch-ood's outlier-score convention). Every pytorch-ood
detector is built on views of our classifier, ``model(x) == model.fc(model.features(x))``:

* ``logits``: the detector's ``model`` is ``fc`` and it receives features, so it sees the logits;
* ``features``: its ``encoder`` is the identity on features (``fit_features``/``predict_features``),
  with ``head = fc`` (or ``fc``'s weight and bias) where it needs the classifier head;
* ``maps``: its ``backbone`` returns features as ``[N, D, 1, 1]`` maps and its ``head`` is ``fc`` on
  their flattening: activation shaping of the pooled penultimate features, as OpenOOD applies ASH.

Names that collide with this project's own detectors (ours are checked against pytorch-ood and
OpenOOD, and stay) carry the prefix ``pood-``. Defaults are pytorch-ood 0.4.0's, each with its
source. Detectors that need input gradients (GradNorm, ODIN, MCD), several layers (Gram, NAC,
Multi-Mahalanobis, RankFeat's spatial maps), text embeddings (MCM), extra weights (WeightedEBO) or a
calibration split (TemperatureScaling) are not adapted. Computation runs on the CPU, where the
fitted pytorch-ood state lives.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from .base import Param
from .posthoc import _FeatureDetector, vim_default_dim

__all__ = ["ADAPTED", "PytorchOOD"]

_FRACTION = dict(kind=float, low=0.0, high=1.0, low_open=True, high_open=True)


class PytorchOOD(_FeatureDetector):
    """Base of the adapted detectors; each subclass names a pytorch-ood class and how to build it."""

    kind: ClassVar[str] = "features"  # logits | features | maps (module docstring)
    make: ClassVar[Callable[..., Any]]  # (pytorch_ood.detector module, fc, feature dim, **params) -> detector

    def __init__(self, model: nn.Module, **params: Any):
        super().__init__(model, **params)
        self._inner: Any = None

    def _build(self, dim: int) -> Any:
        import pytorch_ood.detector as pood

        fc = copy.deepcopy(self.model.fc).float().cpu().eval()
        return type(self).make(pood, fc, dim, **self.hparams)

    def _fit_features(self, z: Tensor, y: Tensor | None) -> None:
        self._inner = self._build(z.shape[1])
        if not self.requires_fit:
            return
        if y is None:
            y = torch.zeros(len(z), dtype=torch.long)
        try:
            if hasattr(self._inner, "fit_features"):
                self._inner.fit_features(z, y)
            else:  # fitted through a loader of (features, label) batches
                self._inner.fit(DataLoader(TensorDataset(z, y), batch_size=4096))
        except ValueError as err:  # e.g. SHE: a class the classifier never gets right on ID train
            raise ValueError(f"{self.name}: pytorch-ood could not fit it on the ID training features ({err}); "
                             f"train the classifier further or remove {self.name!r} from detectors.names") from err

    def _score_features(self, z: Tensor) -> Tensor:
        if self._inner is None:  # nothing to fit: built on first use
            self._inner = self._build(z.shape[1])
        zc = z.detach().float().cpu()
        with torch.no_grad():
            s = self._inner.predict_features(zc) if self.kind == "features" else self._inner.predict(zc)
        return s.to(torch.float32).to(z.device)


def _maps(fc: nn.Module) -> dict[str, Callable[[Tensor], Tensor]]:
    """``backbone``/``head`` of a ``maps`` detector: features as ``[N, D, 1, 1]``, then ``fc``."""
    return {"backbone": lambda z: z[:, :, None, None], "head": lambda t: fc(t.flatten(1))}


def _wb(fc: nn.Module) -> dict[str, Tensor]:
    return {"w": fc.weight.detach(), "b": fc.bias.detach()}


_IDENTITY = nn.Identity()

#: name -> (kind, requires_fit, params, builder); builders receive (the pytorch_ood.detector module, fc, dim, **params).
_SPECS: dict[str, tuple[str, bool, dict[str, Param], Callable[..., Any]]] = {
    # Liu et al., "GEN: Pushing the Limits of Softmax-Based OOD Detection", CVPR 2023; pytorch-ood
    # defaults gamma 0.1 (the paper's) and M = all classes (the paper's top-M, M = C for few classes).
    "gen": ("logits", False, {"gamma": Param(0.1, float, 0.0, 1.0, low_open=True),
                              "M": Param(None, int, 1, optional=True, doc="top-M classes; empty = all")},
            lambda m, fc, dim, gamma, M: m.GEN(fc, gamma=gamma, M=M)),
    "pood-entropy": ("logits", False, {}, lambda m, fc, dim: m.Entropy(fc)),
    # Hendrycks et al., ICML 2022: KL divergence to the class-mean posterior (fitted on ID train).
    "klmatching": ("logits", True, {}, lambda m, fc, dim: m.KLMatching(fc)),
    "pood-msp": ("logits", False, {"t": Param(1.0, float, 0.0, low_open=True)}, lambda m, fc, dim, t: m.MaxSoftmax(fc, t=t)),
    "pood-maxlogit": ("logits", False, {}, lambda m, fc, dim: m.MaxLogit(fc)),
    "pood-energy": ("logits", False, {"t": Param(1.0, float, 0.0, low_open=True)},
                    lambda m, fc, dim, t: m.EnergyBased(fc, t=t)),
    "pood-mahalanobis": ("features", True, {}, lambda m, fc, dim: m.Mahalanobis(_IDENTITY)),
    # Ren et al., "A Simple Fix to Mahalanobis Distance", 2021 (relative Mahalanobis).
    "rmd": ("features", True, {}, lambda m, fc, dim: m.RMD(_IDENTITY)),
    "pood-knn": ("features", True, {"k": Param(50, int, 1)}, lambda m, fc, dim, k: m.KNN(_IDENTITY, k=k)),
    "gmm": ("features", True, {"reg": Param(1e-6, float, 0.0)}, lambda m, fc, dim, reg: m.GMM(_IDENTITY, reg=reg)),
    # d: empty = ViM's rule (ood.detectors.posthoc.vim_default_dim), as our own `vim`.
    "pood-vim": ("features", True, {"d": Param(None, int, 1, optional=True)},
                 lambda m, fc, dim, d: m.ViM(_IDENTITY, d=d or vim_default_dim(dim), **_wb(fc))),
    # Sun & Li, "DICE", ECCV 2022: sparsity p = 0.9 for CIFAR (paper, Sec. 4); pytorch-ood has no default.
    "dice": ("features", True, {"p": Param(0.9, float, 0.0, 1.0, high_open=True)},
             lambda m, fc, dim, p: m.DICE(_IDENTITY, p=p, **_wb(fc))),
    # Liu & Qin, "Detecting OOD through the Lens of Neural Collapse" (NCI); pytorch-ood default alpha 0.
    "nci": ("features", True, {"alpha": Param(0.0, float, 0.0)}, lambda m, fc, dim, alpha: m.NCI(_IDENTITY, fc, alpha=alpha)),
    # Liu & Qin, "Fast Decision Boundary based OOD Detector", ICML 2024.
    "fdbd": ("features", True, {}, lambda m, fc, dim: m.fDBD(_IDENTITY, fc)),
    "pnml": ("features", True, {}, lambda m, fc, dim: m.PNML(_IDENTITY, fc)),
    # Zhang et al., "Out-of-Distribution Detection based on In-Distribution Data Patterns Memorization
    # with Modern Hopfield Energy", ICLR 2023.
    "she": ("features", True, {}, lambda m, fc, dim: m.SHE(_IDENTITY, fc)),
    # Park et al., "Nearest Neighbor Guidance for OOD Detection", ICCV 2023; pytorch-ood default k 10.
    "nnguide": ("features", True, {"k": Param(10, int, 1)}, lambda m, fc, dim, k: m.NNGuide(_IDENTITY, fc, k=k)),
    # Djurisic et al., "Extremely Simple Activation Shaping", ICLR 2023; pytorch-ood defaults ash-s, 0.65.
    "ash": ("maps", False, {"variant": Param("ash-s", str, choices=("ash-s", "ash-b", "ash-p")),
                            "percentile": Param(0.65, **_FRACTION)},
            lambda m, fc, dim, variant, percentile: m.ASH(**_maps(fc), variant=variant, percentile=percentile)),
    # Xu et al., "Scaling for Training Time and Post-hoc OOD Detection Enhancement", ICLR 2024; pytorch-ood default 0.65.
    "scale": ("maps", False, {"percentile": Param(0.65, **_FRACTION)},
              lambda m, fc, dim, percentile: m.SCALE(**_maps(fc), percentile=percentile)),
    "pood-react": ("maps", True, {"percentile": Param(0.9, **_FRACTION)},
                   lambda m, fc, dim, percentile: m.ReAct(**_maps(fc), percentile=percentile)),
    # Xu et al., "VRA: Variational Rectified Activation", NeurIPS 2023; pytorch-ood defaults.
    "vra": ("maps", True, {"lower_percentile": Param(0.01, **_FRACTION), "upper_percentile": Param(0.99, **_FRACTION)},
            lambda m, fc, dim, **kw: m.VRA(**_maps(fc), **kw)),
    # "Logit Scaling for Out-of-Distribution Detection" (LTS); pytorch-ood default p 0.05.
    "lts": ("features", False, {"p": Param(0.05, **_FRACTION)}, lambda m, fc, dim, p: m.LTS(_IDENTITY, fc, p=p)),
}


def _adapter(name: str, kind: str, requires_fit: bool, params: dict[str, Param], make: Callable[..., Any]) -> type[PytorchOOD]:
    cls_name = "Pood" + "".join(part.capitalize() for part in name.removeprefix("pood-").split("-"))
    return type(cls_name, (PytorchOOD,), {"name": name, "kind": kind, "requires_fit": requires_fit, "params": params,
                                          "make": staticmethod(make), "__doc__": f"pytorch-ood's detector as ``{name}``."})


#: adapted pytorch-ood detectors: registry name -> detector class
ADAPTED: dict[str, type[PytorchOOD]] = {name: _adapter(name, *spec) for name, spec in _SPECS.items()}
