"""Tests of the post-hoc OOD baselines (ood.detectors).

1. hand-computed references for the logit scores and the sign convention (higher = more OOD);
2. an independent reference: pytorch-ood 0.4.0's detectors on the same model and data must give
   the same AUROC (to 1e-3) and, where the definitions match, the same (or monotonically equivalent)
   scores (these tests take the ``pod`` fixture and skip without pytorch-ood; the others always run);
3. the registry and the fit-before-score contract.

The model is a tiny classifier that satisfies the project's classifier contract, trained for a few
seconds on a synthetic task: ID images are a bright blob near one of four corners (the class), OOD
images a blob at edge midpoints or the centre (between classes), so AUROCs are well inside (0.5, 1).
Its hidden convolutions use SiLU so that input gradients are never exactly zero (see the ODIN test).
"""

from __future__ import annotations

import math
import pathlib
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ood.detectors as D
from ood.detectors import DEFAULTS, NAMES, NotFittedError, build

SIDE = 16
ID_CENTRES = torch.tensor([[4.0, 4.0], [4.0, 11.0], [11.0, 4.0], [11.0, 11.0]])
OOD_CENTRES = torch.tensor([[4.0, 7.5], [7.5, 4.0], [7.5, 11.0], [11.0, 7.5], [7.5, 7.5]])


def make_images(n: int, centres: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey 16x16 images in [0, 1]: a Gaussian blob at a jittered centre on a noisy background."""
    yy, xx = torch.meshgrid(torch.arange(SIDE).float(), torch.arange(SIDE).float(), indexing="ij")
    y = torch.randint(len(centres), (n,), generator=gen)
    c = centres[y] + 1.2 * torch.randn(n, 2, generator=gen)
    blob = torch.exp(-((yy - c[:, 0, None, None]) ** 2 + (xx - c[:, 1, None, None]) ** 2) / 8.0)
    x = 0.1 + 0.7 * blob + 0.15 * torch.randn(n, SIDE, SIDE, generator=gen)
    return x.clamp(0, 1).unsqueeze(1), y


class TinyClassifier(nn.Module):
    """Satisfies the classifier contract: normalises internally, ``features`` after a ReLU, ``fc``."""

    def __init__(self, num_classes: int = 4, feature_dim: int = 32):
        super().__init__()
        self.register_buffer("mean", torch.tensor(0.3))
        self.register_buffer("std", torch.tensor(0.3))
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, 2, 1), nn.SiLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, feature_dim), nn.ReLU(),
        )
        self.fc = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@pytest.fixture(scope="module")
def task():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x_train, y_train = make_images(2000, ID_CENTRES, gen)
    x_id, _ = make_images(400, ID_CENTRES, gen)
    x_ood, _ = make_images(400, OOD_CENTRES, gen)
    model = TinyClassifier()
    nn.init.constant_(model.body[6].bias, 0.5)  # no dead feature units: keeps the covariance full rank
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(5):
        perm = torch.randperm(len(x_train))
        for i in range(0, len(x_train), 100):
            idx = perm[i:i + 100]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        assert (model(x_train).argmax(1) == y_train).float().mean() > 0.9
        assert (model.features(x_train).std(0) > 0).all(), "a dead feature unit would make the test degenerate"
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=256)
    is_ood = np.r_[np.zeros(len(x_id)), np.ones(len(x_ood))]
    return dict(model=model, loader=loader, x_train=x_train, y_train=y_train,
                x=torch.cat([x_id, x_ood]), is_ood=is_ood)


def ours(task, name, **params) -> torch.Tensor:
    det = build(name, model=task["model"], **params).fit(task["loader"])
    return det.score(task["x"])


def auroc(task, scores) -> float:
    return roc_auc_score(task["is_ood"], torch.as_tensor(scores).double().cpu().numpy())


def assert_same_ranking(a, b):
    a = torch.as_tensor(a).double().cpu().numpy()
    b = torch.as_tensor(b).double().cpu().numpy()
    assert spearmanr(a, b).statistic > 0.9999


# ---------------------------------------------------------------------------------------------------
# 1. hand-computed references


class LogitModel(nn.Module):
    """Returns fixed logits whatever the input: the logit detectors then score those logits."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.fc = nn.Linear(logits.shape[1], logits.shape[1])
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(logits.shape[1]))
            self.fc.bias.zero_()
        self.register_buffer("logits", logits)

    def features(self, x):
        return self.logits[: len(x)]

    def forward(self, x):
        return self.fc(self.features(x))


LOGITS = np.array([[4.0, 1.0, 0.0], [1.0, 1.0, 1.0], [10.0, -2.0, 3.0], [0.5, 0.4, 0.3]])


def _hand(name: str, logits: np.ndarray, t: float = 1.0) -> np.ndarray:
    out = []
    for row in logits:
        if name == "msp":
            e = [math.exp(v / t) for v in row]
            out.append(-max(e) / sum(e))
        elif name == "maxlogit":
            out.append(-max(row))
        elif name == "energy":
            out.append(-t * math.log(sum(math.exp(v / t) for v in row)))
    return np.array(out)


@pytest.mark.parametrize("name", ["msp", "maxlogit", "energy"])
def test_logit_scores_by_hand(name):
    model = LogitModel(torch.tensor(LOGITS, dtype=torch.float32))
    det = build(name, model=model)
    got = det.score(torch.zeros(len(LOGITS), 1, 2, 2))
    assert got.dtype == torch.float32 and got.device.type == "cpu" and got.shape == (len(LOGITS),)
    np.testing.assert_allclose(got.numpy(), _hand(name, LOGITS), rtol=1e-6, atol=1e-6)
    # same via the logit shortcut
    np.testing.assert_allclose(det.score_logits(torch.tensor(LOGITS)).numpy(), _hand(name, LOGITS), rtol=1e-6)
    # sign convention: the uniform row (index 1) is more OOD than the confident rows 0 and 2
    assert got[1] > got[0] and got[1] > got[2]


def test_energy_temperature_by_hand():
    model = LogitModel(torch.tensor(LOGITS, dtype=torch.float32))
    got = build("energy", model=model, temperature=2.5).score(torch.zeros(len(LOGITS), 1, 2, 2))
    np.testing.assert_allclose(got.numpy(), _hand("energy", LOGITS, 2.5), rtol=1e-6)


def test_msp_values_by_hand():
    # exact numbers, written out: softmax([1, 1, 1]) = 1/3 each, so MSP score = -1/3
    model = LogitModel(torch.tensor(LOGITS, dtype=torch.float32))
    got = build("msp", model=model).score(torch.zeros(len(LOGITS), 1, 2, 2))
    assert got[1].item() == pytest.approx(-1 / 3, abs=1e-7)
    assert got[0].item() == pytest.approx(-math.e ** 4 / (math.e ** 4 + math.e + 1), abs=1e-7)


def test_higher_is_more_ood_on_the_task(task):
    for name in NAMES:
        assert auroc(task, ours(task, name)) > 0.7, name


# ---------------------------------------------------------------------------------------------------
# 2. independent reference: pytorch-ood 0.4.0 on the same model and data


@pytest.fixture(scope="module")
def pod():
    """``pytorch_ood.detector``; only the tests that take this fixture skip without pytorch-ood."""
    return pytest.importorskip("pytorch_ood.detector")


def theirs(task, det) -> torch.Tensor:
    return torch.as_tensor(det.predict(task["x"])).detach().cpu()


def test_vs_pytorch_ood_msp_maxlogit_energy(pod, task):
    m = task["model"]
    for name, ref in [("msp", pod.MaxSoftmax(m)), ("maxlogit", pod.MaxLogit(m)), ("energy", pod.EnergyBased(m))]:
        a, b = ours(task, name), theirs(task, ref)
        torch.testing.assert_close(a, b.float(), rtol=1e-5, atol=1e-6)
        assert abs(auroc(task, a) - auroc(task, b)) < 1e-3, name


def test_vs_pytorch_ood_odin(pod, task):
    # Same definition: CE of the predicted class at temperature T, signed-gradient step of eps in the
    # model's input space (our models take raw [0, 1] images, so pytorch-ood needs no norm_std).
    # pytorch-ood uses torch.sign (0 where the gradient is 0), we use the ODIN/OpenOOD convention
    # (+1 where >= 0); the SiLU model has no zero input gradients, so the two agree here.
    m = task["model"]
    m.zero_grad(set_to_none=True)
    a = ours(task, "odin", temperature=1000.0, eps=0.0014)
    b = theirs(task, pod.ODIN(m, eps=0.0014, temperature=1000.0))
    torch.testing.assert_close(a, b.float(), rtol=1e-4, atol=1e-6)
    assert abs(auroc(task, a) - auroc(task, b)) < 1e-3
    assert all(p.grad is None for p in m.parameters()), "ODIN must not leave parameter gradients"
    # and with ε = 0 ODIN is temperature-scaled MSP
    c = ours(task, "odin", temperature=10.0, eps=0.0)
    torch.testing.assert_close(c, theirs(task, pod.MaxSoftmax(m, t=10.0)).float(), rtol=1e-5, atol=1e-7)


def test_vs_pytorch_ood_mahalanobis(pod, task):
    # pytorch-ood: half the squared distance under a covariance that is the *sum* (not the mean) of
    # the centred outer products, plus a 1e-6 ridge, inverted exactly. Ours: squared distance under
    # the mean covariance (pseudo-inverse). With full-rank features (asserted by the fixture) the two
    # differ by the factor 2N: ours = 2 N theirs.
    m = task["model"]
    a = ours(task, "mahalanobis")
    b = theirs(task, pod.Mahalanobis(m.features).fit(task["loader"]))
    n = len(task["x_train"])
    torch.testing.assert_close(a.double(), 2 * n * b.double(), rtol=2e-3, atol=1e-3)
    assert_same_ranking(a, b)
    assert abs(auroc(task, a) - auroc(task, b)) < 1e-3


def test_vs_pytorch_ood_mahalanobis_preprocessing(pod, task):
    # Lee et al.'s input preprocessing: signed-gradient step decreasing the distance to the closest
    # class mean (the overall scale of the distance does not change its gradient's sign).
    m = task["model"]
    eps = 0.002
    a = ours(task, "mahalanobis", eps=eps)
    ref = pod.MahalanobisODIN(m.features, eps=eps)
    ref.fit(task["loader"])
    b = theirs(task, ref)
    assert_same_ranking(a, b)
    assert abs(auroc(task, a) - auroc(task, b)) < 1e-3
    assert not torch.allclose(a, ours(task, "mahalanobis")), "eps > 0 must change the scores"


def test_vs_pytorch_ood_knn(pod, task):
    # pytorch-ood's KNN uses scikit-learn's exact NearestNeighbors (no faiss needed); both normalise
    # features to unit length and score the distance to the k-th neighbour.
    m = task["model"]
    for k in (1, 50):
        a = ours(task, "knn", k=k)
        b = theirs(task, pod.KNN(m.features, k=k).fit(task["loader"]))
        torch.testing.assert_close(a.double(), b.double(), rtol=1e-4, atol=1e-5)
        assert abs(auroc(task, a) - auroc(task, b)) < 1e-3


def _vim_numpy(task, dim: int) -> np.ndarray:
    """ViM written out in float64 numpy, step by step as in the paper / official code."""
    m = task["model"]
    with torch.no_grad():
        z_train = m.features(task["x_train"]).double().numpy()
        z = m.features(task["x"]).double().numpy()
    w = m.fc.weight.detach().double().numpy()
    b = m.fc.bias.detach().double().numpy()
    u = -np.linalg.pinv(w) @ b
    centred = z_train - u
    evals, evecs = np.linalg.eigh(centred.T @ centred / len(centred))
    residual = evecs[:, np.argsort(-evals)[dim:]]  # complement of the `dim` leading directions
    alpha = (z_train @ w.T + b).max(1).mean() / np.linalg.norm(centred @ residual, axis=1).mean()
    logits = z @ w.T + b
    energy = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    return alpha * np.linalg.norm((z - u) @ residual, axis=1) - energy


def test_vs_pytorch_ood_vim(pod, task):
    # Same definition (origin -pinv(W) b, covariance centred at it and divided by N, residual of the
    # `dim` leading eigenvectors, alpha = mean max-logit / mean residual norm). pytorch-ood computes
    # the eigendecomposition in float32; with this covariance's eigenvalue spread (4e2 down to 6e-4)
    # that perturbs the residual projector by ~3e-3 and, times alpha ~ 50, the scores by up to ~0.1.
    # We work in float64, so: our scores equal a float64 numpy reference, and the AUROC (and the
    # ranking) equals pytorch-ood's.
    m = task["model"]
    for dim in (16, 8):
        a = ours(task, "vim") if dim == 16 else ours(task, "vim", dim=dim)  # default: half of 32
        np.testing.assert_allclose(a.numpy(), _vim_numpy(task, dim), rtol=1e-5, atol=1e-4)
        b = theirs(task, pod.ViM(m.features, d=dim, w=m.fc.weight, b=m.fc.bias).fit(task["loader"]))
        assert spearmanr(a.numpy(), b.numpy()).statistic > 0.9999
        assert abs(auroc(task, a) - auroc(task, b)) < 1e-3


def test_vs_pytorch_ood_react(pod, task):
    # pytorch-ood's percentile is a fraction; ours is in percent, as the paper and OpenOOD.
    m = task["model"]
    for p in (90.0, 70.0):
        a = ours(task, "react", percentile=p)
        ref = pod.ReAct(backbone=m.features, head=m.fc, percentile=p / 100).fit(task["loader"])
        det = build("react", model=m, percentile=p).fit(task["loader"])
        assert det.threshold == pytest.approx(ref.threshold, rel=1e-6)
        b = theirs(task, ref)
        torch.testing.assert_close(a, b.float(), rtol=1e-5, atol=1e-5)
        assert abs(auroc(task, a) - auroc(task, b)) < 1e-3


# ---------------------------------------------------------------------------------------------------
# conventions, edge cases


def test_odin_zero_gradient_convention():
    # a model that only looks at the left half of the image: the right half has an exactly zero
    # input gradient; following the ODIN and OpenOOD code (torch.ge), those pixels move by -eps.
    class HalfModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def features(self, x):
            return torch.relu(x[:, 0, :, :2].flatten(1))

        def forward(self, x):
            return self.fc(self.features(x))

    torch.manual_seed(1)
    det = build("odin", model=HalfModel(), eps=0.01)
    x = torch.rand(5, 1, 2, 4)
    x_tilde = det.perturb(x)
    torch.testing.assert_close(x_tilde[..., 2:], x[..., 2:] - 0.01)
    assert ((x_tilde[..., :2] - x[..., :2]).abs() - 0.01).abs().max() < 1e-6


def test_score_features_matches_score(task):
    m, x = task["model"], task["x"]
    with torch.no_grad():
        z = m.features(x)
    for name in ("msp", "maxlogit", "energy", "mahalanobis", "knn", "vim", "react"):
        det = build(name, model=m).fit(task["loader"])
        torch.testing.assert_close(det.score_features(z).float().cpu(), det.score(x), rtol=1e-5, atol=1e-5)


def test_knn_chunks_match_brute_force(task):
    m = task["model"]
    det = build("knn", model=m, k=7).fit(task["loader"])
    det.query_chunk, det.bank_chunk = 33, 5  # many chunks, some smaller than k
    got = det.score(task["x"][:100])
    with torch.no_grad():
        bank = F.normalize(m.features(task["x_train"]), dim=1)
        q = F.normalize(m.features(task["x"][:100]), dim=1)
    ref = torch.cdist(q.double(), bank.double()).sort(dim=1).values[:, 6]
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)


def test_mahalanobis_ignores_dead_units():
    # a feature unit that is zero on all training data must not blow up the distance
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(300, 5, generator=gen).abs()
    y = torch.arange(300) % 3
    z_dead = torch.cat([z, torch.zeros(300, 1)], dim=1)
    model = TinyClassifier(num_classes=3, feature_dim=6)
    full = build("mahalanobis", model=model).fit_features(z_dead, y)
    assert full.rank == 5
    q = torch.randn(20, 5, generator=gen).abs()
    q_dead = torch.cat([q, torch.rand(20, 1, generator=gen)], dim=1)  # the dead unit fires on test data
    ref = build("mahalanobis", model=TinyClassifier(3, 5)).fit_features(z, y).score_features(q)
    got = full.score_features(q_dead)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    # and the distances are those of numpy with an explicit tied covariance
    means = np.stack([z[y == c].numpy().astype(np.float64).mean(0) for c in range(3)])
    cen = z.numpy().astype(np.float64) - means[y.numpy()]
    prec = np.linalg.inv(cen.T @ cen / len(z))
    diffs = q.numpy()[:, None, :].astype(np.float64) - means[None]
    d2 = np.einsum("nkd,de,nke->nk", diffs, prec, diffs).min(1)
    np.testing.assert_allclose(ref.numpy(), d2, rtol=1e-6)


def test_vim_dim_rule_and_validation(task):
    assert D.vim_default_dim(2048) == 1000
    assert D.vim_default_dim(1536) == 1000
    assert D.vim_default_dim(768) == 512
    assert D.vim_default_dim(512) == 256
    assert D.vim_default_dim(32) == 16
    assert build("vim", model=task["model"]).dim == 16
    with pytest.raises(ValueError, match=r"vim.*'dim'.*\[1, 31\]"):
        build("vim", model=task["model"], dim=32)


def test_fit_ignores_negative_labels_and_restores_train_mode(task):
    m = task["model"]
    x, y = task["x_train"][:300], task["y_train"][:300].clone()
    y_ood = y.clone()
    y_ood[:100] = -1
    a = build("knn", model=m, k=5).fit(DataLoader(TensorDataset(x[100:], y[100:]), batch_size=64))
    b = build("knn", model=m, k=5).fit(DataLoader(TensorDataset(x, y_ood), batch_size=64))
    torch.testing.assert_close(a.bank, b.bank)
    m.train()
    try:
        build("odin", model=m).score(task["x"][:10])
        build("mahalanobis", model=m).fit(task["loader"]).score(task["x"][:10])
        assert m.training and all(mod.training for mod in m.modules())
    finally:
        m.eval()


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_the_model_device_and_returns_cpu_float32(task, device):
    import copy

    m = copy.deepcopy(task["model"]).to(device)
    x = task["x"][:64]  # on the CPU: the detector moves it
    for name in NAMES:
        det = build(name, model=m).fit(task["loader"])
        got = det.score(x)
        assert got.device.type == "cpu" and got.dtype == torch.float32 and got.shape == (64,), name
        ref = build(name, model=task["model"]).fit(task["loader"]).score(x)
        torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-3)


def test_dense_detector_default_score_is_mean_of_map(task):
    class PixelBrightness(D.DenseDetector):
        name = "brightness"

        def _score_map(self, x):
            return x.mean(dim=1)

    det = PixelBrightness(task["model"])
    x = task["x"][:4]
    assert det.score_map(x).shape == (4, SIDE, SIDE)
    torch.testing.assert_close(det.score(x), x.mean(dim=(1, 2, 3)))


# ---------------------------------------------------------------------------------------------------
# 3. registry and fit contract


def test_registry_names_and_defaults():
    assert set(NAMES) == {"msp", "maxlogit", "energy", "odin", "mahalanobis", "knn", "vim", "react"}
    assert D.available() == [*NAMES, *D.ADAPTED, *D.TRAINED]
    assert set(DEFAULTS) == set(NAMES)
    for name in NAMES:
        specs = D.REGISTRY[name].params
        assert {k: s.default for k, s in specs.items()} == DEFAULTS[name], name
    assert DEFAULTS["odin"] == {"temperature": 1000.0, "eps": 0.0014}
    assert DEFAULTS["knn"] == {"k": 50}
    assert DEFAULTS["react"] == {"percentile": 90.0}


def test_build_rejects_unknown_name(task):
    with pytest.raises(ValueError, match=r"unknown detector 'nope'.*msp.*react"):
        build("nope", model=task["model"])


@pytest.mark.parametrize(
    "name, params, exc, pattern",
    [
        ("knn", {"kk": 5}, TypeError, r"knn: unknown parameter\(s\) 'kk'; allowed parameters: k \(int in \[1, inf\)\)"),
        ("msp", {"temperature": 2.0}, TypeError, r"msp: unknown parameter\(s\) 'temperature'; allowed parameters: none"),
        ("knn", {"k": 0}, ValueError, r"knn: parameter 'k' must be a int in \[1, inf\), got 0"),
        ("knn", {"k": 2.5}, TypeError, r"knn: parameter 'k'"),
        ("knn", {"k": True}, TypeError, r"knn: parameter 'k'"),
        ("odin", {"temperature": 0}, ValueError, r"odin: parameter 'temperature' must be a float in \(0.0, inf\)"),
        ("odin", {"eps": -0.1}, ValueError, r"odin: parameter 'eps' must be a float in \[0.0, inf\)"),
        ("odin", {"eps": "big"}, TypeError, r"odin: parameter 'eps'"),
        ("energy", {"temperature": float("nan")}, ValueError, r"energy: parameter 'temperature'"),
        ("react", {"percentile": 150}, ValueError, r"react: parameter 'percentile' must be a float in \(0.0, 100.0\]"),
        ("react", {"percentile": 0.0}, ValueError, r"react: parameter 'percentile'"),
        ("vim", {"dim": 0}, ValueError, r"vim: parameter 'dim' must be a int in \[1, inf\) or None"),
    ],
)
def test_build_rejects_bad_params(task, name, params, exc, pattern):
    with pytest.raises(exc, match=pattern):
        build(name, model=task["model"], **params)


def test_build_needs_a_model():
    with pytest.raises(TypeError, match="model"):
        build("msp")


@pytest.mark.parametrize("name", ["mahalanobis", "knn", "vim", "react"])
def test_score_before_fit_raises(task, name):
    det = build(name, model=task["model"])
    assert det.requires_fit
    with pytest.raises(NotFittedError, match=rf"{name}: detector is not fitted; call fit"):
        det.score(task["x"][:4])


@pytest.mark.parametrize("name", ["msp", "maxlogit", "energy", "odin"])
def test_unfitted_detectors_score_without_fit(task, name):
    det = build(name, model=task["model"])
    assert not det.requires_fit
    assert det.score(task["x"][:4]).shape == (4,)
    assert det.fit(task["loader"]) is det


def test_knn_k_larger_than_training_set(task):
    small = DataLoader(TensorDataset(task["x_train"][:10], task["y_train"][:10]), batch_size=4)
    with pytest.raises(ValueError, match=r"knn: parameter 'k'=50 exceeds the number of ID training samples \(10\)"):
        build("knn", model=task["model"]).fit(small)


def test_project_code_does_not_import_pytorch_ood():
    """Our own detectors stay independent of their reference; only the adapter of pytorch-ood's
    detectors by name (ood/detectors/pood.py) uses it."""
    root = pathlib.Path(__file__).resolve().parents[1] / "ood"
    imports = re.compile(r"^\s*(import|from)\s+pytorch_ood\b|import_module\(\s*['\"]pytorch_ood", re.M)
    for path in root.rglob("*.py"):
        if path != root / "detectors" / "pood.py":
            assert not imports.search(path.read_text()), path
    assert imports.search((root / "detectors" / "pood.py").read_text())  # the pattern does match an import
