"""Post-hoc OOD baselines on a trained classifier: MSP, MaxLogit, Energy, ODIN, Mahalanobis, KNN,
ViM and ReAct.

Every detector follows :class:`ood.detectors.base.Detector`: ``fit(id_train_loader) -> self`` and
``score(x) -> Tensor[N]`` (CPU float32), **higher = more OOD**. Scores are the papers' ID
confidence scores with the sign flipped where needed.

The classifier contract (ARCHITECTURE.md, "Contracts"): ``model(x)`` returns logits ``[N, C]``,
``model.features(x)`` the penultimate features ``[N, D]`` (after the last ReLU) and ``model.fc`` is
the final ``nn.Linear`` with ``model(x) == model.fc(model.features(x))``. Inputs are images in
[0, 1]; the model normalises internally, so input perturbations (ODIN, Mahalanobis with ε > 0)
are taken in raw pixel units (see :func:`_perturb`).

Besides ``score(x)``, the detectors that only need logits offer ``score_logits(logits)`` and the
ones that only need penultimate features offer ``score_features(z)``, so an evaluation can run the
network once and score many detectors. These are plain tensor functions: they return on the
device of their input, and do not run the network.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Detector, Param, extract_features

__all__ = [
    "DEFAULTS",
    "MSP",
    "MaxLogit",
    "Energy",
    "ODIN",
    "Mahalanobis",
    "KNN",
    "ViM",
    "ReAct",
    "vim_default_dim",
]

#: Default hyper-parameters of every post-hoc baseline, by registry name, with their sources.
DEFAULTS: dict[str, dict[str, Any]] = {
    # Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution Examples
    # in Neural Networks", ICLR 2017: score = -max_c softmax(f(x))_c. No hyper-parameters.
    "msp": {},
    # Hendrycks et al., "Scaling Out-of-Distribution Detection for Real-World Settings", ICML 2022:
    # score = -max_c f_c(x). No hyper-parameters.
    "maxlogit": {},
    # Liu et al., "Energy-based Out-of-distribution Detection", NeurIPS 2020: score = energy
    # E(x) = -T logsumexp(f(x)/T); T = 1 in the paper and in OpenOOD v1.5 (configs/postprocessors/ebo.yml).
    "energy": {"temperature": 1.0},
    # Liang et al., "Enhancing the Reliability of Out-of-distribution Image Detection in Neural
    # Networks", ICLR 2018. T = 1000 (paper) and ε = 0.0014 (OpenOOD v1.5 configs/postprocessors/odin.yml,
    # the paper's CIFAR-10/DenseNet value), ε in raw [0, 1] pixel units.
    "odin": {"temperature": 1000.0, "eps": 0.0014},
    # Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution Samples and
    # Adversarial Attacks", NeurIPS 2018, penultimate layer only, class means + tied covariance.
    # No input preprocessing (ε = 0), as OpenOOD v1.5 "mds" (configs/postprocessors/mds.yml); the
    # paper tunes ε ∈ {0, 0.0005, 0.001, 0.0014, 0.002, 0.0024, 0.005, 0.01, 0.05, 0.1, 0.2}.
    "mahalanobis": {"eps": 0.0},
    # Sun et al., "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022: k = 50
    # for CIFAR-10 with 100 % of the training data (paper, Sec. 4.1; OpenOOD v1.5 knn.yml K: 50).
    "knn": {"k": 50},
    # Wang et al., "ViM: Out-Of-Distribution with Virtual-logit Matching", CVPR 2022. dim = None means
    # the paper's rule (vim_default_dim): D = 1000 if the feature dimension is >= 1500, 512 if it is
    # 768, else half of it (OpenOOD v1.5 uses 256 for the 512-d CIFAR ResNet-18, the same rule).
    "vim": {"dim": None},
    # Sun et al., "ReAct: Out-of-distribution Detection With Rectified Activations", NeurIPS 2021:
    # clip at the 90th percentile of ID activations (paper; OpenOOD v1.5 react.yml percentile: 90),
    # then the energy score with T = 1.
    "react": {"percentile": 90.0},
}


# --------------------------------------------------------------------------------------------------
# score functions on logits (pure tensor code; sign: higher = more OOD)


def msp_score(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """``-max_c softmax(logits / T)_c``."""
    return -torch.softmax(logits.float() / temperature, dim=1).amax(dim=1)


def maxlogit_score(logits: Tensor) -> Tensor:
    """``-max_c logits_c``."""
    return -logits.float().amax(dim=1)


def energy_score(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """The energy ``-T logsumexp(logits / T)`` (the paper's ID score is the negative energy)."""
    return -temperature * torch.logsumexp(logits.float() / temperature, dim=1)


def _perturb(x: Tensor, loss_fn, eps: float) -> Tensor:
    """One signed-gradient step ``x - eps * sign(grad_x loss(x))`` in raw input space.

    ``loss_fn(x)`` returns per-sample losses; their sum is differentiated so that every sample's
    gradient is independent of the batch size. Only the input receives gradients: the model's
    parameters collect none.

    Two conventions, both those of the original ODIN code (facebookresearch/odin) and OpenOOD v1.5
    (and Lee et al.'s Mahalanobis code):

    * the sign is ``+1`` where the gradient is ``>= 0`` (``torch.ge``), so pixels with an exactly zero
      gradient (common behind max-pooling) still move by ``-eps``; ``torch.sign`` (pytorch-ood)
      would leave them in place.
    * ``eps`` is in raw [0, 1] pixel units. OpenOOD differentiates w.r.t. the *normalised* input
      x_n = (x - mean) / std and then divides the sign by std before stepping in normalised space;
      a step of eps/std in normalised units is a step of eps in raw units, and
      dL/dx = (dL/dx_n) / std has the same sign because std > 0. So differentiating w.r.t. the raw
      input (our models normalise internally) and stepping by eps is exactly OpenOOD's update.
      No clipping to [0, 1] afterwards, as in both reference codes.
    """
    with torch.inference_mode(False), torch.enable_grad():
        x_in = x.detach().clone().requires_grad_(True)
        loss = loss_fn(x_in).sum()
        (grad,) = torch.autograd.grad(loss, x_in)
    direction = torch.where(grad >= 0, 1.0, -1.0).to(x.dtype)
    return (x.detach() - eps * direction).detach()


def _l2_normalize(z: Tensor) -> Tensor:
    # Sun et al.'s normaliser: x / (||x|| + 1e-10)
    return z / (z.norm(dim=1, keepdim=True) + 1e-10)


# --------------------------------------------------------------------------------------------------
# logit-based detectors


class _LogitDetector(Detector):
    """A detector that is a function of the logits only."""

    def score_logits(self, logits: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def score_features(self, z: Tensor) -> Tensor:
        """Scores from penultimate features via ``model.fc`` (no network pass)."""
        with torch.no_grad():
            return self.score_logits(self.model.fc(z.to(self.device))).to(z.device)

    def _score(self, x: Tensor) -> Tensor:
        return self.score_logits(self.model(x))


class MSP(_LogitDetector):
    """Maximum softmax probability (Hendrycks & Gimpel 2017): ``score = -max_c softmax(f(x))_c``."""

    name = "msp"
    params: ClassVar[dict[str, Param]] = {}

    def score_logits(self, logits: Tensor) -> Tensor:
        return msp_score(logits)


class MaxLogit(_LogitDetector):
    """Maximum logit (Hendrycks et al. 2022): ``score = -max_c f_c(x)``."""

    name = "maxlogit"
    params: ClassVar[dict[str, Param]] = {}

    def score_logits(self, logits: Tensor) -> Tensor:
        return maxlogit_score(logits)


class Energy(_LogitDetector):
    """Energy score (Liu et al. 2020): ``score = -T logsumexp(f(x) / T)``."""

    name = "energy"
    params: ClassVar[dict[str, Param]] = {
        "temperature": Param(DEFAULTS["energy"]["temperature"], float, low=0.0, low_open=True,
                             doc="temperature T"),
    }

    def score_logits(self, logits: Tensor) -> Tensor:
        return energy_score(logits, self.temperature)


class ODIN(Detector):
    """ODIN (Liang et al. 2018): temperature scaling plus input perturbation.

    ``x~ = x - eps * sign(-grad_x log softmax_yhat(f(x) / T))`` with ``yhat`` the predicted class,
    then ``score = -max_c softmax(f(x~) / T)_c``. ``eps`` is in raw [0, 1] pixel units; see
    :func:`_perturb` for why this equals OpenOOD's update on normalised inputs, and for the sign
    convention at zero gradient. Needs one backward pass (input gradient only).
    """

    name = "odin"
    needs_grad = True
    params: ClassVar[dict[str, Param]] = {
        "temperature": Param(DEFAULTS["odin"]["temperature"], float, low=0.0, low_open=True,
                             doc="temperature T"),
        "eps": Param(DEFAULTS["odin"]["eps"], float, low=0.0, doc="perturbation magnitude (raw pixel units)"),
    }

    def perturb(self, x: Tensor) -> Tensor:
        """The ODIN-preprocessed input ``x~`` (on the model's device)."""
        x = x.to(self.device)

        def nll_of_prediction(x_in: Tensor) -> Tensor:
            logits = self.model(x_in) / self.temperature
            # -log softmax_yhat(f(x)/T): cross-entropy with the predicted label
            return F.cross_entropy(logits, logits.argmax(dim=1).detach(), reduction="none")

        if self.eps == 0:
            return x.detach()
        return _perturb(x, nll_of_prediction, self.eps)

    def _score(self, x: Tensor) -> Tensor:
        x_tilde = self.perturb(x)
        with torch.no_grad():
            return msp_score(self.model(x_tilde), self.temperature)


# --------------------------------------------------------------------------------------------------
# feature-based detectors


class _FeatureDetector(Detector):
    """Fitted on penultimate features of ID training data; scores are functions of features."""

    requires_fit = True
    _state: ClassVar[tuple[str, ...]] = ()  # names of fitted tensors, moved to the scoring device

    def _fit(self, loader: Iterable) -> None:
        z, y = extract_features(self.model, loader, desc=f"{self.name}: ID features")
        self._fit_features(z, y)

    def fit_features(self, z: Tensor, y: Tensor | None = None) -> "_FeatureDetector":
        """Fit from precomputed ID training features ``z [N, D]`` (and labels ``y [N]``)."""
        z = z.detach().to("cpu", torch.float32).reshape(len(z), -1)
        if y is not None:
            y = torch.as_tensor(y).to("cpu", torch.int64)
            keep = y >= 0
            z, y = z[keep], y[keep]
        self._fit_features(z, y)
        self.fitted = True
        return self

    def _fit_features(self, z: Tensor, y: Tensor | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_on(self, device: torch.device) -> None:
        for key in self._state:
            value = getattr(self, key)
            if isinstance(value, Tensor) and value.device != device:
                setattr(self, key, value.to(device))

    def score_features(self, z: Tensor) -> Tensor:
        """Scores from penultimate features ``z [N, D]`` (no network pass; same device as ``z``)."""
        self._check_fitted()
        self._state_on(z.device)
        with torch.no_grad():
            return self._score_features(z.reshape(len(z), -1))

    def _score_features(self, z: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, x: Tensor) -> Tensor:
        self._state_on(x.device)
        return self._score_features(self.model.features(x).reshape(len(x), -1))


class Mahalanobis(_FeatureDetector):
    """Mahalanobis distance (Lee et al. 2018) on penultimate features.

    Fit: class means ``mu_c`` and the shared (tied) covariance
    ``Sigma = 1/N sum_c sum_{i in c} (z_i - mu_c)(z_i - mu_c)^T`` of ID training features, with the
    ground-truth labels. Score: ``min_c (z - mu_c)^T Sigma^+ (z - mu_c)`` (squared distance).

    ``Sigma^+`` is a symmetric pseudo-inverse computed from an eigendecomposition in float64,
    dropping eigenvalues below ``D * eps_float32 * lambda_max`` (features are float32, so smaller
    eigenvalues are rounding noise; this is scipy/sklearn ``pinvh``'s default for float32 data,
    which OpenOOD's "mds" uses). Dead ReLU units (constant zero on the training set) are thereby
    ignored instead of exploding the distance. Distances are computed in the whitened space in float64.

    ``eps > 0`` adds Lee et al.'s input preprocessing: one signed-gradient step decreasing the
    distance to the closest class mean, in raw pixel units (conventions as ODIN, :func:`_perturb`).
    """

    name = "mahalanobis"
    params: ClassVar[dict[str, Param]] = {
        "eps": Param(DEFAULTS["mahalanobis"]["eps"], float, low=0.0,
                     doc="input preprocessing magnitude (raw pixel units); 0 = none"),
    }
    _state = ("means", "whiten", "means_w")

    @property
    def needs_grad(self) -> bool:  # type: ignore[override]
        return self.eps > 0

    def _fit_features(self, z: Tensor, y: Tensor | None) -> None:
        if y is None:
            raise ValueError("mahalanobis: fit needs class labels; the loader must yield (x, y) batches")
        self.classes, index = torch.unique(y, return_inverse=True)
        n, d = z.shape
        k = len(self.classes)
        z64 = z.double()
        means = torch.zeros(k, d, dtype=torch.float64).index_add_(0, index, z64)
        means /= torch.bincount(index, minlength=k).unsqueeze(1).double()
        cov = torch.zeros(d, d, dtype=torch.float64)
        for start in range(0, n, 8192):  # chunked so the centred copy stays small
            c = z64[start:start + 8192] - means[index[start:start + 8192]]
            cov += c.T @ c
        cov /= n
        evals, evecs = torch.linalg.eigh(cov)
        cutoff = d * torch.finfo(torch.float32).eps * evals.max().clamp(min=0)
        keep = evals > cutoff
        if not bool(keep.any()):
            raise ValueError("mahalanobis: the ID training features have zero covariance")
        self.rank = int(keep.sum())
        self.means = means  # [K, D] float64
        self.covariance = cov
        self.whiten = evecs[:, keep] / evals[keep].sqrt()  # [D, r]: Sigma^+ = whiten @ whiten.T
        self.means_w = means @ self.whiten  # [K, r]

    def distances(self, z: Tensor) -> Tensor:
        """Squared Mahalanobis distances ``[N, K]`` of features ``z`` to every class mean (float64)."""
        self._state_on(z.device)
        zw = z.double() @ self.whiten
        d2 = (zw * zw).sum(1, keepdim=True) + (self.means_w * self.means_w).sum(1) - 2 * zw @ self.means_w.T
        return d2.clamp(min=0)

    def _score_features(self, z: Tensor) -> Tensor:
        return self.distances(z).amin(dim=1)

    def _score(self, x: Tensor) -> Tensor:
        self._state_on(x.device)
        if self.eps > 0:
            whiten = self.whiten.float()
            means = self.means.float()

            def closest_distance(x_in: Tensor) -> Tensor:
                z = self.model.features(x_in).reshape(len(x_in), -1)
                nearest = self.distances(z.detach()).argmin(dim=1)
                diff = (z - means[nearest]) @ whiten
                return (diff * diff).sum(dim=1)

            x = _perturb(x, closest_distance, self.eps)
            with torch.no_grad():
                return self._score_features(self.model.features(x).reshape(len(x), -1))
        return super()._score(x)


class KNN(_FeatureDetector):
    """Deep nearest neighbours (Sun et al. 2022).

    Features are L2-normalised (``z / (||z|| + 1e-10)``, the paper's normaliser); the score is the
    Euclidean distance to the ``k``-th nearest normalised ID training feature (all training data is
    kept). Exact search in chunks with torch matrix products (no faiss): candidates are ranked by
    cosine similarity (equivalent to Euclidean distance on the unit sphere) and the distance to the
    ``k``-th is then computed exactly as ``||q - b||``.
    """

    name = "knn"
    params: ClassVar[dict[str, Param]] = {
        "k": Param(DEFAULTS["knn"]["k"], int, low=1, doc="rank of the neighbour whose distance is the score"),
    }
    _state = ("bank",)
    query_chunk = 1024
    bank_chunk = 16384

    def _fit_features(self, z: Tensor, y: Tensor | None) -> None:
        if len(z) < self.k:
            raise ValueError(f"knn: parameter 'k'={self.k} exceeds the number of ID training samples ({len(z)})")
        self.bank = _l2_normalize(z.float()).contiguous()  # [M, D]

    def _score_features(self, z: Tensor) -> Tensor:
        q_all = _l2_normalize(z.float())
        bank = self.bank
        out = []
        for qs in range(0, len(q_all), self.query_chunk):
            q = q_all[qs:qs + self.query_chunk]
            best_sim = q.new_empty(len(q), 0)
            best_idx = torch.empty(len(q), 0, dtype=torch.long, device=q.device)
            for bs in range(0, len(bank), self.bank_chunk):
                sim = q @ bank[bs:bs + self.bank_chunk].T
                kk = min(self.k, sim.shape[1])
                s, i = sim.topk(kk, dim=1)
                best_sim = torch.cat([best_sim, s], dim=1)
                best_idx = torch.cat([best_idx, i + bs], dim=1)
                if best_sim.shape[1] > self.k:
                    best_sim, j = best_sim.topk(self.k, dim=1)
                    best_idx = best_idx.gather(1, j)
            # best_sim is sorted descending after the last topk unless there was a single chunk of
            # exactly k columns: take the k-th largest explicitly
            kth = best_sim.topk(self.k, dim=1).indices[:, -1:]
            neighbour = bank[best_idx.gather(1, kth).squeeze(1)]
            out.append((q - neighbour).norm(dim=1))
        return torch.cat(out) if out else z.new_empty(0)


def vim_default_dim(feature_dim: int) -> int:
    """ViM's principal-subspace dimension rule (Wang et al. 2022, Sec. 4):
    1000 if the feature dimension is >= 1500, 512 if it is 768, otherwise half of it."""
    if feature_dim >= 1500:
        return 1000
    if feature_dim == 768:
        return 512
    return feature_dim // 2


def _fc(model: nn.Module) -> nn.Linear:
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise TypeError("the classifier must expose its last layer as `fc: nn.Linear` (ARCHITECTURE.md, Contracts)")
    return fc


class ViM(_FeatureDetector):
    """Virtual-logit matching (Wang et al. 2022).

    Origin ``u = -W^+ b`` of the last layer ``fc`` (``W`` ``[C, D]``, ``b`` ``[C]``); principal
    subspace ``P`` = the ``dim`` leading eigenvectors of the covariance of the training features
    centred at ``u`` (``1/N sum (z - u)(z - u)^T``, as the official code's
    ``EmpiricalCovariance(assume_centered=True)`` on ``z - u``); residual ``x_perp`` = the component of
    ``z - u`` orthogonal to ``P``; ``alpha`` = mean max-logit / mean ``||x_perp||`` on the training set.
    Score ``alpha ||x_perp|| - logsumexp(f(x))``: the negative log of the virtual-logit softmax
    probability ``-log(softmax([logits, alpha ||x_perp||])_virtual)`` is ``log(1 + exp(score))``, a
    monotone function of it, so the ranking (and every threshold-free metric) is the paper's.
    ``dim=None`` applies :func:`vim_default_dim`; ``dim`` must be < the feature dimension.
    """

    name = "vim"
    params: ClassVar[dict[str, Param]] = {
        "dim": Param(DEFAULTS["vim"]["dim"], int, low=1, optional=True,
                     doc="principal subspace dimension D (None: the paper's rule)"),
    }
    _state = ("u", "residual_basis")

    def __init__(self, model: nn.Module, **params: Any):
        super().__init__(model, **params)
        feature_dim = _fc(model).in_features
        self._resolve_dim(feature_dim)

    def _resolve_dim(self, feature_dim: int) -> None:
        dim = self.hparams["dim"]
        dim = vim_default_dim(feature_dim) if dim is None else dim
        if not 1 <= dim < feature_dim:
            raise ValueError(
                f"vim: parameter 'dim' must be an int in [1, {feature_dim - 1}] (smaller than the "
                f"feature dimension {feature_dim}), got {dim!r}"
            )
        self.dim = dim

    def _fit_features(self, z: Tensor, y: Tensor | None) -> None:
        fc = _fc(self.model)
        if z.shape[1] != fc.in_features:
            raise ValueError(f"vim: features have dimension {z.shape[1]}, fc expects {fc.in_features}")
        self._resolve_dim(z.shape[1])
        w = fc.weight.detach().to("cpu", torch.float64)
        b = fc.bias.detach().to("cpu", torch.float64) if fc.bias is not None else w.new_zeros(w.shape[0])
        self.u = -(torch.linalg.pinv(w) @ b)  # [D]
        n, d = z.shape
        cov = torch.zeros(d, d, dtype=torch.float64)
        for start in range(0, n, 8192):
            c = z[start:start + 8192].double() - self.u
            cov += c.T @ c
        cov /= n
        _, evecs = torch.linalg.eigh(cov)  # ascending eigenvalues
        self.residual_basis = evecs[:, : d - self.dim].contiguous()  # [D, D - dim]
        resid = self._residual_norm(z)
        max_logit = torch.cat([self._logits(z[s:s + 8192]).amax(dim=1).cpu() for s in range(0, n, 8192)])
        self.alpha = float(max_logit.double().mean() / resid.mean())

    def _logits(self, z: Tensor) -> Tensor:
        """``fc(z)`` computed on the model's device, returned on ``z``'s device."""
        with torch.no_grad():
            return self.model.fc(z.to(self.device)).to(z.device)

    def _residual_norm(self, z: Tensor) -> Tensor:
        return ((z.double() - self.u) @ self.residual_basis).norm(dim=1)

    def _score_features(self, z: Tensor) -> Tensor:
        energy = torch.logsumexp(self._logits(z).double(), dim=1)
        return self.alpha * self._residual_norm(z) - energy


class ReAct(_FeatureDetector):
    """ReAct (Sun et al. 2021): clip penultimate activations at the ``percentile``-th percentile of
    all ID training activations (numpy's linear interpolation, as the official code's
    ``np.percentile(activation_log.flatten(), 90)``), then the energy score of ``fc(clipped)``
    (T = 1)."""

    name = "react"
    params: ClassVar[dict[str, Param]] = {
        "percentile": Param(DEFAULTS["react"]["percentile"], float, low=0.0, high=100.0, low_open=True,
                            doc="percentile p of ID activations used as the clipping threshold"),
    }

    def _fit_features(self, z: Tensor, y: Tensor | None) -> None:
        self.threshold = float(np.percentile(z.numpy().ravel(), self.percentile))

    def _score_features(self, z: Tensor) -> Tensor:
        logits = self.model.fc(z.to(self.device).clamp(max=self.threshold)).to(z.device)
        return energy_score(logits, 1.0)
