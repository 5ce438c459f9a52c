"""The detector contract shared by every OOD detector in :mod:`ood.detectors`.

* ``fit(id_train_loader) -> self``: estimate whatever the detector needs from in-distribution
  training data (a no-op for detectors with ``requires_fit = False``). The loader yields
  ``(x, y)`` batches; samples with a negative label (the project's OOD label is -1) are ignored.
* ``score(x) -> Tensor[N]``: one score per image, **higher = more OOD** (OOD is the positive class
  everywhere in this project).

Conventions every detector follows:

* The model is run in eval mode (its previous train/eval state is restored afterwards), under
  ``torch.no_grad()`` except where input gradients are needed (ODIN, Mahalanobis with ε > 0).
* Computation happens on the model's device: ``x`` is moved there. Scores are returned on the
  **CPU as float32**, whatever the model's device, so callers can concatenate and save them
  without thinking about devices.
* Hyper-parameters are validated in the constructor; a wrong name raises ``TypeError`` and a wrong
  value ``ValueError`` (wrong type: ``TypeError``), each naming the detector, the parameter and
  what is allowed. :func:`ood.detectors.build` builds any detector by its registry name.
"""

from __future__ import annotations

import abc
import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping

import torch
from torch import Tensor, nn
from tqdm import tqdm

__all__ = [
    "Detector",
    "DenseDetector",
    "NotFittedError",
    "Param",
    "eval_mode",
    "extract_features",
    "model_device",
]


class NotFittedError(RuntimeError):
    """Raised by ``score`` of a detector with ``requires_fit = True`` that was not fitted."""


@dataclass(frozen=True)
class Param:
    """Specification of one hyper-parameter: default, accepted type and allowed range.

    ``low``/``high`` bound the value; ``low_open``/``high_open`` make the bound exclusive.
    ``optional`` admits ``None`` (meaning "use the documented rule").
    """

    default: Any
    kind: type  # int or float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    doc: str = ""

    def range_text(self) -> str:
        lo = "-inf" if self.low is None else repr(self.low)
        hi = "inf" if self.high is None else repr(self.high)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        text = f"{self.kind.__name__} in {left}{lo}, {hi}{right}"
        return text + (" or None" if self.optional else "")

    def validate(self, detector: str, name: str, value: Any) -> Any:
        if value is None:
            if self.optional:
                return None
            raise TypeError(f"{detector}: parameter {name!r} must be a {self.range_text()}, got None")
        # bool is an int subclass; a flag where a number is expected is a configuration mistake
        ok_types = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_types):
            # accept numpy / 0-d torch scalars
            if hasattr(value, "item") and not isinstance(value, bool):
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, ok_types):
                raise TypeError(
                    f"{detector}: parameter {name!r} must be a {self.range_text()}, "
                    f"got {type(value).__name__} {value!r}"
                )
        value = self.kind(value)
        if self.kind is float and not math.isfinite(value):
            raise ValueError(f"{detector}: parameter {name!r} must be a finite {self.range_text()}, got {value!r}")
        bad = (
            (self.low is not None and (value <= self.low if self.low_open else value < self.low))
            or (self.high is not None and (value >= self.high if self.high_open else value > self.high))
        )
        if bad:
            raise ValueError(f"{detector}: parameter {name!r} must be a {self.range_text()}, got {value!r}")
        return value


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (or buffer); CPU for a model without either."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the duration of the block, restoring each module's state."""
    states = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in states:
            m.training = training


def _split_batch(batch: Any) -> tuple[Tensor, Tensor | None]:
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, Mapping):
        return batch["image"], batch.get("label")
    return batch[0], (batch[1] if len(batch) > 1 else None)


@torch.no_grad()
def extract_features(
    model: nn.Module,
    loader: Iterable,
    fn: Callable[[Tensor], Tensor] | None = None,
    desc: str = "features",
) -> tuple[Tensor, Tensor | None]:
    """Run ``fn`` (default ``model.features``) over a loader of ID data, batch by batch.

    Returns ``(z, y)``: ``z`` float32 CPU ``[N, D]`` and ``y`` int64 CPU ``[N]`` (``None`` if the
    loader yields no labels). Samples with a negative label are dropped (OOD in this project).
    Only the features are accumulated, never the images. Runs in eval mode on the model's device,
    with a tqdm progress bar that is disabled when stderr is not a terminal.
    """
    fn = model.features if fn is None else fn
    device = model_device(model)
    zs: list[Tensor] = []
    ys: list[Tensor] = []
    has_labels = True
    with eval_mode(model):
        for batch in tqdm(loader, desc=desc, leave=False, disable=None):
            x, y = _split_batch(batch)
            if y is None:
                has_labels = False
            else:
                y = torch.as_tensor(y)
                keep = y >= 0
                if not bool(keep.all()):
                    x, y = x[keep], y[keep]
                if len(y) == 0:
                    continue
                ys.append(y.to("cpu", torch.int64))
            z = fn(x.to(device))
            zs.append(z.detach().reshape(len(z), -1).to("cpu", torch.float32))
    if not zs:
        raise ValueError("the fit loader yielded no in-distribution samples (all labels negative or empty)")
    return torch.cat(zs), (torch.cat(ys) if has_labels else None)


class Detector(abc.ABC):
    """Base class: ``fit(loader) -> self`` and ``score(x) -> Tensor[N]`` (higher = more OOD).

    Subclasses set ``name`` (the registry name), ``requires_fit`` and ``params`` (the
    hyper-parameter specifications; their defaults are :data:`ood.detectors.DEFAULTS`), and
    implement :meth:`_score` (called on the model's device, in eval mode) and, when
    ``requires_fit``, :meth:`_fit`.
    """

    name: ClassVar[str] = "detector"
    requires_fit: ClassVar[bool] = False
    params: ClassVar[dict[str, Param]] = {}
    needs_grad: ClassVar[bool] = False  # True where scoring needs input gradients

    def __init__(self, model: nn.Module, **params: Any):
        if not isinstance(model, nn.Module):
            raise TypeError(f"{self.name}: model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.hparams: dict[str, Any] = self.validate_params(params)
        for key, value in self.hparams.items():
            setattr(self, key, value)
        self.fitted = False

    # -- parameters -------------------------------------------------------------------------------
    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``params``, each validated; unknown names raise ``TypeError``."""
        unknown = sorted(set(params) - set(cls.params))
        if unknown:
            allowed = ", ".join(f"{k} ({p.range_text()})" for k, p in cls.params.items()) or "none"
            raise TypeError(
                f"{cls.name}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
                f"allowed parameters: {allowed}"
            )
        out = {}
        for key, spec in cls.params.items():
            out[key] = spec.validate(cls.name, key, params.get(key, spec.default))
        return out

    # -- the contract -----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def fit(self, loader: Iterable) -> "Detector":
        """Fit on in-distribution training data (``(x, y)`` batches); a no-op where nothing is fitted."""
        if self.requires_fit:
            self._fit(loader)
        self.fitted = True
        return self

    def score(self, x: Tensor) -> Tensor:
        """OOD scores ``[N]`` for images ``x`` ``[N, C, H, W]`` in [0, 1]; higher = more OOD.

        Returned on the CPU as float32.
        """
        self._check_fitted()
        x = x.to(self.device)
        with eval_mode(self.model):
            if self.needs_grad:
                s = self._score(x)
            else:
                with torch.no_grad():
                    s = self._score(x)
        return s.detach().to("cpu", torch.float32)

    __call__ = score

    def _fit(self, loader: Iterable) -> None:  # pragma: no cover - overridden where needed
        raise NotImplementedError

    @abc.abstractmethod
    def _score(self, x: Tensor) -> Tensor:
        """Scores for ``x`` already on the model's device, model in eval mode."""

    def _check_fitted(self) -> None:
        if self.requires_fit and not self.fitted:
            raise NotFittedError(
                f"{self.name}: detector is not fitted; call fit(id_train_loader) before score()"
            )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"


class DenseDetector(Detector):
    """A detector that scores every pixel: ``score_map(x) -> Tensor[N, H, W]`` (higher = more OOD).

    The image score defaults to the mean of the map. Dense baselines come in a later issue.
    """

    def score_map(self, x: Tensor) -> Tensor:
        """Per-pixel OOD scores ``[N, H, W]`` on the CPU as float32."""
        self._check_fitted()
        x = x.to(self.device)
        with eval_mode(self.model):
            if self.needs_grad:
                s = self._score_map(x)
            else:
                with torch.no_grad():
                    s = self._score_map(x)
        return s.detach().to("cpu", torch.float32)

    @abc.abstractmethod
    def _score_map(self, x: Tensor) -> Tensor:
        """Per-pixel scores ``[N, H, W]`` for ``x`` on the model's device, model in eval mode."""

    def _score(self, x: Tensor) -> Tensor:
        return self._score_map(x).flatten(1).mean(dim=1)
