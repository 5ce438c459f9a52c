"""The detector contract shared by every OOD detector in :mod:`ood.detectors`.

* ``fit(train, *, val=None, outliers=None) -> self``: estimate whatever the detector needs from
  in-distribution training data, a Dataset or a loader of ``(x, y)`` batches (a no-op for
  detectors with ``requires_fit = False``); samples with a negative label (the project's OOD
  label is -1) are ignored. Detectors that train networks of their own (:class:`TrainedDetector`)
  also take ID validation data and auxiliary outliers, and ``save(path)`` what they trained.
* ``score(x, keys=None) -> Tensor[N]``: one score per image, **higher = more OOD** (OOD is the
  positive class everywhere in this project). Dense detectors add ``score_map(x, keys=None)``.
* Randomness is per sample: a detector that draws random numbers draws them from generators
  seeded by ``(seed, key)`` (:func:`sample_generators`), so a score never depends on the batch.

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
import hashlib
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Hashable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..io import atomic_torch_save
from ..schema import device
from .method import Ablation, Gallery, Method

__all__ = [
    "Detector",
    "DenseDetector",
    "Ablation",
    "Gallery",
    "Key",
    "Method",
    "NotFittedError",
    "Param",
    "TRAINING",
    "TrainedDetector",
    "as_loader",
    "content_keys",
    "per_sample",
    "sample_generators",
    "sample_seed",
    "eval_mode",
    "extract_features",
    "model_device",
]


class NotFittedError(RuntimeError):
    """Raised by ``score`` of a detector with ``requires_fit = True`` that was not fitted."""


@dataclass(frozen=True)
class Param:
    """Specification of one hyper-parameter: default, accepted type and allowed values.

    ``kind`` is ``int``, ``float``, ``bool`` or ``str``. Numbers: ``low``/``high`` bound the value,
    ``low_open``/``high_open`` make a bound exclusive. ``choices`` restricts a value to a fixed set
    (e.g. ``("mean", "max")``). ``check`` is an extra rule returning an error text or ``None`` (e.g.
    a device name). ``optional`` admits ``None`` (meaning "use the documented rule").
    """

    default: Any
    kind: type = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    doc: str = ""
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], "str | None"] | None = None

    def range_text(self) -> str:
        if self.choices is not None:
            text = "one of " + ", ".join(map(repr, self.choices))
        elif self.kind is bool:
            text = "bool (true or false)"
        elif self.kind is str:
            text = "str"
        else:
            lo = "-inf" if self.low is None else repr(self.low)
            hi = "inf" if self.high is None else repr(self.high)
            left = "(" if self.low_open or self.low is None else "["
            right = ")" if self.high_open or self.high is None else "]"
            text = f"{self.kind.__name__} in {left}{lo}, {hi}{right}"
        return text + (" or None" if self.optional else "")

    def _fail(self, detector: str, name: str, value: Any, err: type[Exception] = ValueError) -> Exception:
        what = self.range_text() if self.choices is not None else f"a {self.range_text()}"
        got = f"{type(value).__name__} {value!r}" if err is TypeError else repr(value)
        return err(f"{detector}: parameter {name!r} must be {what}, got {got}")

    def validate(self, detector: str, name: str, value: Any) -> Any:
        if value is None:
            if self.optional:
                return None
            raise self._fail(detector, name, value, TypeError)
        if hasattr(value, "item") and not isinstance(value, (bool, str)):  # numpy / 0-d torch scalars
            value = value.item()
        if self.kind is bool:
            if not isinstance(value, bool):
                raise self._fail(detector, name, value, TypeError)
        elif self.kind is str:
            if not isinstance(value, str):
                raise self._fail(detector, name, value, TypeError)
        else:
            # bool is an int subclass; a flag where a number is expected is a configuration mistake
            ok_types = (int,) if self.kind is int else (int, float)
            if isinstance(value, bool) or not isinstance(value, ok_types):
                raise self._fail(detector, name, value, TypeError)
            value = self.kind(value)
            if not math.isfinite(value):
                raise self._fail(detector, name, value)
            bad = (
                (self.low is not None and (value <= self.low if self.low_open else value < self.low))
                or (self.high is not None and (value >= self.high if self.high_open else value > self.high))
            )
            if bad:
                raise self._fail(detector, name, value)
        if self.choices is not None and value not in self.choices:
            raise self._fail(detector, name, value)
        if self.check is not None and (msg := self.check(value)) is not None:
            raise ValueError(f"{detector}: parameter {name!r} {msg}")
        return value


#: Keys every trained detector's ``train`` section shares.
TRAINING: dict[str, Param] = {
    "device": Param("auto", str, check=device(), doc="auto = cuda, else mps, else cpu"),
    "amp": Param(True, bool, doc="mixed precision, only on CUDA"),
    # data-parallel training processes (ood.pipeline.fit under torchrun; one GPU each); batch_size is per process
    "processes": Param(1, int, 1, 4096, doc="training processes (torchrun)"),
}


#: Identity of one sample: ``(set, index)`` in the pipeline, any hashable text/int elsewhere.
Key = Hashable


def sample_seed(seed: int, key: Key) -> int:
    """A 63-bit seed from ``(seed, key)``: stable across processes, platforms and Python versions
    (``hash()`` is salted per process, so it is not used)."""
    digest = hashlib.sha256(repr((int(seed), key)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def content_keys(x: Tensor) -> list[str]:
    """Default sample keys: a digest of each image's own pixels, so a bare image gets the same
    random draws whatever batch it is scored in (identical images share them)."""
    flat = x.detach().to("cpu", torch.float32).contiguous().reshape(len(x), -1).numpy()
    return [hashlib.sha256(row.tobytes()).hexdigest()[:16] for row in flat]


def sample_generators(seed: int, keys: Sequence[Key]) -> list[torch.Generator]:
    """One CPU generator per sample, seeded by ``(seed, key)``. Draw on the CPU, then move the
    result to the model's device: the numbers are then the same on every device."""
    return [torch.Generator().manual_seed(sample_seed(seed, k)) for k in keys]


def per_sample(generators: Sequence[torch.Generator], draw: Callable[[torch.Generator], Tensor]) -> Tensor:
    """Stack ``draw(g)`` over the per-sample generators (e.g. ``lambda g: torch.randn(1, 28, 28, generator=g)``)."""
    return torch.stack([draw(g) for g in generators])


def _to_cpu(out: Any) -> Any:
    """A tensor, or a dict or tuple of them, detached on the CPU (floating tensors as float32)."""
    if isinstance(out, dict):
        return {k: _to_cpu(v) for k, v in out.items()}
    if isinstance(out, tuple):
        return tuple(_to_cpu(v) for v in out)
    out = out.detach()
    return out.to("cpu", torch.float32) if out.is_floating_point() else out.cpu()


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


def as_loader(data: Any, batch_size: int = 512) -> Iterable:
    """A Dataset becomes an ordered loader; a loader (anything else iterable) is used as it is."""
    if isinstance(data, Dataset):
        return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0)
    return data


class Detector(abc.ABC):
    """Base class: ``fit(train, *, val=None, outliers=None) -> self`` and ``score(x, keys=None) ->
    Tensor[N]`` (higher = more OOD).

    Subclasses set ``name`` (the registry name), ``requires_fit`` and ``params`` (the scoring
    hyper-parameters; their defaults are :data:`ood.detectors.DEFAULTS`), and implement
    :meth:`_score` (called on the model's device, in eval mode) and, when ``requires_fit``,
    :meth:`_fit`. A detector that draws random numbers while scoring sets ``random = True``; its
    ``_score(x, keys)`` then receives one key per sample and must draw only from
    ``sample_generators(self.seed, keys)``, so a score never depends on its batch-mates.
    """

    name: ClassVar[str] = "detector"
    requires_fit: ClassVar[bool] = False
    params: ClassVar[dict[str, Param]] = {}
    needs_grad: ClassVar[bool] = False  # True where scoring needs input gradients
    random: ClassVar[bool] = False  # True where scoring draws random numbers (per sample, by key)
    seed: int = 0

    def __init__(self, model: nn.Module, **params: Any):
        if not isinstance(model, nn.Module):
            raise TypeError(f"{self.name}: model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.hparams: dict[str, Any] = self.validate_params(params)
        shadowed = [k for k in self.hparams if hasattr(type(self), k)]
        if shadowed:  # a parameter called e.g. `score` would hide the method of that name
            raise TypeError(f"{self.name}: parameter name(s) {shadowed} shadow attributes of {type(self).__name__}")
        for key, value in self.hparams.items():
            setattr(self, key, value)
        self.fitted = False

    # -- parameters -------------------------------------------------------------------------------
    @classmethod
    def validate_params(cls, params: Mapping[str, Any], spec: Mapping[str, Param] | None = None) -> dict[str, Any]:
        """Defaults overridden by ``params``, each validated against ``spec`` (default: ``params``
        of the class); unknown names raise ``TypeError``."""
        spec = cls.params if spec is None else spec
        unknown = sorted(set(params) - set(spec))
        if unknown:
            allowed = ", ".join(f"{k} ({p.range_text()})" for k, p in spec.items()) or "none"
            raise TypeError(
                f"{cls.name}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
                f"allowed parameters: {allowed}"
            )
        return {key: p.validate(cls.name, key, params.get(key, p.default)) for key, p in spec.items()}

    # -- the contract -----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def fit(self, train: Any, *, val: Any = None, outliers: Any = None) -> "Detector":
        """Fit on in-distribution training data (a Dataset or a loader of ``(x, y)`` batches); a
        no-op where nothing is fitted. ``val`` (ID validation) and ``outliers`` (auxiliary outlier
        images) are used only by detectors that train networks of their own."""
        if self.requires_fit:
            self._fit(as_loader(train))
        self.fitted = True
        return self

    def score(self, x: Tensor, keys: Sequence[Key] | None = None) -> Tensor:
        """OOD scores ``[N]`` for images ``x`` ``[N, C, H, W]`` in [0, 1]; higher = more OOD.

        ``keys``: one identity per sample (the pipeline passes ``(set, index)``); the random draws
        of a ``random`` detector depend on them only. Default: a digest of each image's pixels.
        Returned on the CPU as float32.
        """
        return self._run(self._score, x, keys)

    __call__ = score

    def _run(self, fn: Callable[..., Any], x: Tensor, keys: Sequence[Key] | None) -> Any:
        """``fn(x[, keys])`` on the model's device in eval mode; its tensor result (or a dict or
        tuple of tensors) back on the CPU, floating tensors as float32."""
        self._check_fitted()
        if keys is not None and len(keys) != len(x):
            raise ValueError(f"{self.name}: got {len(keys)} keys for {len(x)} images")
        args: tuple = ()
        if self.random:
            args = (list(keys) if keys is not None else content_keys(x),)
        x = x.to(self.device)
        with eval_mode(self.model), torch.set_grad_enabled(self.needs_grad):
            out = fn(x, *args)
        return _to_cpu(out)

    def _fit(self, loader: Iterable) -> None:  # pragma: no cover - overridden where needed
        raise NotImplementedError

    @abc.abstractmethod
    def _score(self, x: Tensor, *keys: Any) -> Tensor:
        """Scores for ``x`` already on the model's device, model in eval mode (``random``
        detectors also receive the list of keys)."""

    def _check_fitted(self) -> None:
        if self.requires_fit and not self.fitted:
            raise NotFittedError(
                f"{self.name}: detector is not fitted; call fit(id_train_data) before score()"
            )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"


class DenseDetector(Detector):
    """A detector that scores every pixel: ``score_map(x) -> Tensor[N, H, W]`` (higher = more OOD).

    The image score defaults to the mean of the map. The map may be a function of the segmenter's
    logits (the dense baselines) or come from a network the detector owns.
    """

    def score_map(self, x: Tensor, keys: Sequence[Key] | None = None) -> Tensor:
        """Per-pixel OOD scores ``[N, H, W]`` on the CPU as float32."""
        return self._run(self._score_map, x, keys)

    @abc.abstractmethod
    def _score_map(self, x: Tensor, *keys: Any) -> Tensor:
        """Per-pixel scores ``[N, H, W]`` for ``x`` on the model's device, model in eval mode."""

    def _score(self, x: Tensor, *keys: Any) -> Tensor:
        return self._score_map(x, *keys).flatten(1).mean(dim=1)


class TrainedDetector(Detector):
    """A detector that trains networks of its own next to the frozen classifier (or segmenter).

    ``fit(train, *, val=None, outliers=None)`` trains them with :func:`ood.train.fit` (the one
    training loop); ``save(path)`` writes every network, its config, the detector's parameters and
    fitted state to one checkpoint; :func:`ood.detectors.load` rebuilds it (``weights_only=True``).

    Subclasses declare ``train_params`` (training hyper-parameters, validated like ``params``),
    implement :meth:`_fit` (filling :attr:`networks` and :attr:`state`) and :meth:`_build_networks`
    (rebuilding the networks from their configs on load).
    """

    requires_fit: ClassVar[bool] = True
    train_params: ClassVar[dict[str, Param]] = {}
    # Keys of the params.yaml ``score`` section that steer the evaluation, not the detector (e.g.
    # DiffGuard's seeded evaluation subset); :meth:`split_score` separates them.
    eval_params: ClassVar[dict[str, Param]] = {}
    needs_outliers: ClassVar[bool] = False  # True where training needs an auxiliary outlier set
    method: ClassVar[Method] = Method()  # how the pipeline trains and scores it (stages, benchmark, fit inputs)

    def __init__(self, model: nn.Module, *, train: Mapping[str, Any] | None = None, seed: int = 0, **params: Any):
        super().__init__(model, **params)
        self.train_hparams: dict[str, Any] = self.validate_params(dict(train or {}), self.train_params)
        self.seed = int(seed)  # params.yaml's seed: training draws and per-sample scoring draws
        self.networks: dict[str, nn.Module] = {}
        self.configs: dict[str, dict[str, Any]] = {}
        self.state: dict[str, Tensor] = {}  # fitted tensors that are not network weights
        self.history: list[dict[str, float]] = []

    @classmethod
    def split_score(cls, section: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A params.yaml ``score`` section -> (the detector's parameters, the evaluation's, validated)."""
        evaluation = {k: v for k, v in section.items() if k in cls.eval_params}
        return ({k: v for k, v in section.items() if k not in cls.eval_params},
                cls.validate_params(evaluation, cls.eval_params))

    def fit(self, train: Any, *, val: Any = None, outliers: Any = None, checkpoint: Any = None,
            progress: bool = True) -> "TrainedDetector":
        """Train the detector's networks on ID ``train`` (a Dataset); ``val``: ID validation;
        ``outliers``: auxiliary outliers (required where ``needs_outliers``); ``checkpoint``: file
        from which an interrupted training resumes."""
        if self.needs_outliers and outliers is None:
            raise ValueError(f"{self.name}: training needs an auxiliary outlier set (outliers=...)")
        self.model.eval()  # the classifier stays frozen: only the detector's own networks train
        self._fit(train, val=val, outliers=outliers, checkpoint=checkpoint, progress=progress)
        for net in self.networks.values():
            net.eval()
        self.fitted = True
        return self

    @abc.abstractmethod
    def _fit(self, train: Any, *, val: Any, outliers: Any, checkpoint: Any, progress: bool) -> None:  # type: ignore[override]
        """Build and train ``self.networks`` (with ``self.configs``) and fill ``self.state``."""

    @abc.abstractmethod
    def _build_networks(self, configs: Mapping[str, dict[str, Any]]) -> dict[str, nn.Module]:
        """Networks rebuilt from ``configs`` (their weights are loaded afterwards)."""

    def checkpoint(self) -> dict[str, Any]:
        """What :meth:`save` writes: every network, its config, the parameters and the fitted state."""
        self._check_fitted()
        return {
            "detector": self.name,
            "seed": self.seed,
            "params": self.hparams,
            "train": self.train_hparams,
            "configs": self.configs,
            "networks": {k: {n: t.detach().cpu() for n, t in net.state_dict().items()}
                         for k, net in self.networks.items()},
            "state": {k: v.detach().cpu() for k, v in self.state.items()},
            "history": self.history,
        }

    def save(self, path: Any) -> None:
        """One checkpoint with every network, its config, the parameters and the fitted state."""
        atomic_torch_save(self.checkpoint(), path)

    def with_params(self, **params: Any) -> "TrainedDetector":
        """The same trained networks with other scoring parameters (e.g. a sampler's settings)."""
        return type(self).from_checkpoint(self.checkpoint(), self.model, **params)

    # -- hooks of the generic training and scoring stages (ood.pipeline.fit / ood.pipeline.score) --
    # Each returns plain data; a method overrides those it has something for. See ARCHITECTURE.md.
    @property
    def own_model(self) -> nn.Module | None:
        """The copy of the classifier (segmenter) a method that ``fine_tunes`` (:class:`Method`)
        trains, whose quality the training stage reports (NFlowJS's segmenter: its mIoU)."""
        return None

    def training_summary(self, bench: Any, data: Mapping[str, Any]) -> dict[str, Any]:
        """Extra fields of the training report (``reports/<benchmark>/<training stage>.json``)."""
        return {}

    def training_galleries(self, bench: Any, data: Mapping[str, Any]) -> list[Gallery]:
        """Figures of the training stage (samples of what the networks learnt)."""
        return []

    def prepare_scoring(self, val: Any, batch_size: int) -> None:
        """Fit what scoring needs from ID validation data before any image is scored (every process)."""

    def ablations(self, evaluation: Mapping[str, Any]) -> list[Ablation]:
        """Labelled variants the scoring stage adds to the ablations file (``evaluation``: the
        evaluation keys of the ``score`` section)."""
        return []

    def checks(self, x: Tensor, keys: Sequence[Key]) -> dict[str, Any]:
        """Checks on seeded ID validation images that can fail (e.g. label following), written to
        ``<name>_checks.json`` by the scoring stage; empty: none."""
        return {}

    def cost_details(self) -> dict[str, Any]:
        """Extra columns of the cost table (e.g. network evaluations per image)."""
        return {}

    def score_galleries(self, bench: Any) -> list[Gallery]:
        """Figures of the scoring stage (give each a ``file`` to save it for the report)."""
        return []

    def describe(self, params: Mapping[str, Any], training: Mapping[str, Any], checks: Mapping[str, Any],
                 costs: Mapping[str, Any]) -> str:
        """The method's section of the report (Markdown), from the stage's files and parameters."""
        return ""

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any], model: nn.Module, **params: Any) -> "TrainedDetector":
        """Rebuild from a loaded checkpoint; ``params`` override the saved scoring parameters."""
        det = cls(model, train=ckpt["train"], seed=ckpt["seed"], **{**ckpt["params"], **params})
        det.configs = dict(ckpt["configs"])
        det.networks = det._build_networks(det.configs)
        device = model_device(model)
        for k, net in det.networks.items():
            net.load_state_dict(ckpt["networks"][k])
            net.to(device).eval()
        det.state = {k: v.to(device) for k, v in ckpt["state"].items()}
        det.history = [dict(h) for h in ckpt.get("history", [])]
        det.fitted = True
        return det

    def to(self, device: Any) -> "TrainedDetector":
        for net in self.networks.values():
            net.to(device)
        self.state = {k: v.to(device) for k, v in self.state.items()}
        return self
