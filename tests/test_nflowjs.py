"""NFlowJS against hand computations and independent references: the JSD loss (by hand and
scipy), the patch flow (change of variables checked with an autograd Jacobian, the closed form of
the flow at initialisation, invertibility, one set of weights at several patch sizes), gradients of
the JSD term reaching the flow through the samples, pasting (labels = pasted pixels exactly, CE
ignoring them), and the dense detector end to end (score convention, batch independence,
save/load, criteria, parameter validation, the baseline segmenter left untouched, determinism).

Every network is tiny; the algebra does not depend on the weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

import ood.detectors as D
import ood.detectors.nflowjs as nflowjs_module
import ood.models
from ood.detectors.dense import entropy_score
from ood.detectors.nflowjs import _JointTraining, jsd_to_uniform, paste_patches
from ood.detectors.posthoc import msp_score
from ood.models.flows import PatchFlow, _CouplingNet
from ood.train import IGNORE_INDEX

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

ALPHA = 0.05  # RealNVP's logit margin (ood.models.flows._ALPHA), restated here on purpose
C = 3  # classes of the toy scenes
S = 32  # toy scene side
TRAIN = {"epochs": 1, "flow_epochs": 1, "batch_size": 8, "levels": 2, "steps": 2, "hidden": 8, "patch_min": 8,
         "patch_max": 16, "device": "cpu", "lr": 1e-3, "flow_lr": 1e-3}
JOINT_T = {"patch_min": 8, "patch_max": 16, "temperature": 1.0, "beta": 0.03, "lam": 1.0, "lr": 1e-3, "flow_lr": 1e-3}


def scenes(n: int, seed: int) -> TensorDataset:
    """Random scenes in [0, 1] with labels 0..C-1 and a void (255) band on top."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, S, S, generator=g)
    y = torch.randint(0, C, (n, S, S), generator=g)
    y[:, :2] = IGNORE_INDEX
    return TensorDataset(x, y)


def randomised(flow: PatchFlow, seed: int, scale: float = 0.1) -> PatchFlow:
    """Perturb every floating parameter (coupling nets' zero last layers, ActNorm, LU entries) so
    that no transform is trivial; ActNorm is marked initialised so that train mode keeps them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    for name, buf in flow.named_buffers():
        if name.endswith("initialized"):
            buf.fill_(True)
    return flow


def coupling_nets(flow: PatchFlow) -> list[_CouplingNet]:
    nets = [m for m in flow.modules() if isinstance(m, _CouplingNet)]
    assert nets
    return nets


# -- the JSD loss ---------------------------------------------------------------------------------
@pytest.mark.parametrize("c", [2, 3, 7, 19, 100])
def test_jsd_is_zero_for_a_uniform_posterior(c):
    for value in (0.0, 3.5, -12.0):
        logits = torch.full((2, c, 3, 4), value)
        got = jsd_to_uniform(logits)
        assert got.shape == (2, 3, 4)
        torch.testing.assert_close(got, torch.zeros(2, 3, 4), atol=1e-7, rtol=0)
    # anything else is strictly positive
    logits = torch.zeros(1, c, 1, 1)
    logits[0, 0] = 0.5
    assert float(jsd_to_uniform(logits)) > 0


def test_jsd_of_a_one_hot_posterior_by_hand():
    # C = 2, P = (1, 0), U = (1/2, 1/2), M = (3/4, 1/4)
    u, p, m = (0.5, 0.5), (1.0, 0.0), (0.75, 0.25)
    kl_um = sum(ui * math.log(ui / mi) for ui, mi in zip(u, m))
    kl_pm = sum(pi * math.log(pi / mi) for pi, mi in zip(p, m) if pi > 0)
    expected = 0.5 * (kl_um + kl_pm)
    assert expected == pytest.approx(0.2157615543, abs=1e-9)
    got = jsd_to_uniform(torch.tensor([[30.0, -30.0]]), dim=1)
    assert got.shape == (1,)
    assert float(got) == pytest.approx(expected, abs=1e-6)
    # symmetric in the classes, and along another dim
    assert float(jsd_to_uniform(torch.tensor([[-30.0], [30.0]]), dim=0)) == pytest.approx(expected, abs=1e-6)


def test_jsd_matches_scipy_per_pixel():
    from scipy.spatial.distance import jensenshannon

    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(4, 5, 6, 7, generator=g)
    got = jsd_to_uniform(logits).double().numpy()
    p = torch.softmax(logits.double(), dim=1).numpy()
    ref = np.empty((4, 6, 7))
    u = np.full(5, 1 / 5)
    for n in range(4):
        for i in range(6):
            for j in range(7):
                ref[n, i, j] = jensenshannon(p[n, :, i, j], u, base=math.e) ** 2  # scipy gives the square root
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=1e-5)
    # and vectorised along the class axis
    np.testing.assert_allclose(got, jensenshannon(p, np.full_like(p, 1 / 5), axis=1) ** 2, atol=1e-6, rtol=1e-5)


def test_jsd_is_bounded_by_ln2():
    g = torch.Generator().manual_seed(1)
    for c in (2, 10, 1000):
        logits = 50 * torch.randn(8, c, 2, 2, generator=g)
        got = jsd_to_uniform(logits)
        assert (got >= -1e-7).all() and (got <= math.log(2) + 1e-6).all()
    # a one-hot posterior over many classes approaches ln 2 from below
    one_hot = torch.full((1, 1000), -100.0)
    one_hot[0, 0] = 100.0
    assert math.log(2) - 0.01 < float(jsd_to_uniform(one_hot)) <= math.log(2) + 1e-6


# -- the patch flow -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flow() -> PatchFlow:
    torch.manual_seed(0)
    return randomised(PatchFlow(channels=1, levels=2, steps=2, hidden=8), seed=1).eval()


def test_log_prob_is_finite_at_two_sizes_with_one_set_of_weights(flow):
    assert flow.factor == 4
    g = torch.Generator().manual_seed(0)
    for side in (8, 16):
        x = torch.rand(5, 1, side, side, generator=g)
        lp, bits = flow.log_prob(x), flow.nll_bits(x)
        assert lp.shape == (5,) and bits.shape == (5,)
        assert torch.isfinite(lp).all() and torch.isfinite(bits).all()
    # non-square patches too
    assert flow.log_prob(torch.rand(2, 1, 8, 12, generator=g)).shape == (2,)


def test_nll_bits_is_bits_per_dimension_of_the_8_bit_data(flow):
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    d = 64
    got = flow.nll_bits(x, generator=torch.Generator().manual_seed(5))
    lp = flow.log_prob(x, generator=torch.Generator().manual_seed(5))  # the same dequantisation noise
    torch.testing.assert_close(got, -(lp - d * math.log(256)) / (d * math.log(2)))
    # dequantisation noise is x -> (255 x + u) / 256 with u ~ U[0, 1), drawn from the generator
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(lp, flow.log_prob((255 * x + u) / 256, dequantize=False))


def test_sample_at_two_sizes_in_unit_range(flow):
    for side in (8, 16):
        s = flow.sample(4, side, temperature=0.8, generator=torch.Generator().manual_seed(0))
        assert s.shape == (4, 1, side, side)
        assert (s >= 0).all() and (s <= 1).all()
    a = flow.sample(3, 8, generator=torch.Generator().manual_seed(3))
    b = flow.sample(3, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert flow.sample(2, (8, 12)).shape == (2, 1, 8, 12)


def test_decode_inverts_encode(flow):
    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    y, _ = flow.to_logit(x)
    latents, _ = flow.encode(y)
    assert [tuple(z.shape[1:]) for z in latents] == flow.latent_shapes(16, 16) == [(2, 8, 8), (8, 4, 4)]
    with torch.no_grad():
        torch.testing.assert_close(flow.decode(latents), y, atol=1e-4, rtol=0)
    torch.testing.assert_close(flow.from_logit(y), x, atol=1e-5, rtol=0)
    # the logit map by hand
    s = ALPHA + (1 - 2 * ALPHA) * x
    torch.testing.assert_close(y, torch.log(s / (1 - s)), atol=1e-5, rtol=1e-5)


def test_sides_not_divisible_by_the_factor_are_rejected(flow):
    with pytest.raises(ValueError, match="multiples of 4"):
        flow.log_prob(torch.rand(1, 1, 10, 8))
    with pytest.raises(ValueError, match="multiples of 4"):
        flow.sample(1, 6)
    with pytest.raises(ValueError, match="multiples of 4"):
        flow.latent_shapes(8, 14)
    with pytest.raises(ValueError, match="multiples of 8"):
        PatchFlow(channels=1, levels=3, steps=1, hidden=4).encode(torch.zeros(1, 1, 12, 12))


def _latent_jacobian(flow: PatchFlow, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(flattened latents z(y), dz/dy) for one patch ``y`` [1, C, h, w], by autograd."""
    def f(v):
        latents, _ = flow.encode(v.view_as(y))
        return torch.cat([z.flatten(1) for z in latents], dim=1)[0]
    z = f(y.flatten())
    jac = torch.autograd.functional.jacobian(f, y.flatten())
    return z, jac


def _hand_logit_logdet(x: torch.Tensor) -> torch.Tensor:
    s = ALPHA + (1 - 2 * ALPHA) * x.double()
    return (math.log(1 - 2 * ALPHA) - torch.log(s) - torch.log(1 - s)).flatten(1).sum(1)


def test_log_prob_is_the_change_of_variables_by_autograd_jacobian():
    """log p(x) = log N(z(y); 0, I) + log|det dz/dy| + log|det dy/dx| for a flow with random weights
    (the flow's own log-det bookkeeping is not used for the reference)."""
    torch.manual_seed(3)
    flow = randomised(PatchFlow(channels=1, levels=2, steps=2, hidden=8), seed=4, scale=0.3).double().eval()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    got = flow.log_prob(x, dequantize=False).detach()
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    for i in range(2):
        y = torch.log(ALPHA + (1 - 2 * ALPHA) * x[i:i + 1]) - torch.log(1 - ALPHA - (1 - 2 * ALPHA) * x[i:i + 1])
        z, jac = _latent_jacobian(flow, y)
        assert jac.shape == (64, 64)
        ref = normal.log_prob(z).sum() + torch.linalg.slogdet(jac)[1] + _hand_logit_logdet(x[i:i + 1])[0]
        assert float(got[i]) == pytest.approx(float(ref.detach()), abs=1e-6)


def test_flow_at_initialisation_in_closed_form():
    """The brief's premise, checked: a fresh flow in eval mode is *not* the identity. ActNorm (not
    initialised) is the identity, the 1x1 convolution is identity-initialised LU *after a fixed
    random channel permutation*, and nflows' affine coupling with a zero net output scales by
    sigmoid(0 + 2) + 1e-3 (not 1). So z is y permuted and scaled by c0^k per element, and the
    log-det is steps * log(c0) * (transformed elements per level) = 2 * log(c0) * (D/2 + D/4)."""
    torch.manual_seed(7)
    flow = PatchFlow(channels=1, levels=2, steps=2, hidden=8).double().eval()
    for m in flow.modules():
        if hasattr(m, "initialized"):
            assert not bool(m.initialized)
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    d = 64
    c0 = 1 / (1 + math.exp(-2)) + 1e-3
    y, ld_logit = flow.to_logit(x)
    torch.testing.assert_close(ld_logit, _hand_logit_logdet(x))
    latents, logdet = flow.encode(y)
    hand_logdet = 2 * math.log(c0) * (d / 2 + d / 4)
    torch.testing.assert_close(logdet, torch.full((3,), hand_logdet, dtype=torch.float64), atol=1e-5, rtol=0)
    z, jac = _latent_jacobian(flow, y[:1])
    # a scaled permutation: one non-zero per row and column, each a power of c0
    nz = jac != 0
    assert (nz.sum(0) == 1).all() and (nz.sum(1) == 1).all()
    powers = torch.log(jac[nz].abs()) / math.log(c0)  # the LU diagonal is 1 to float32 rounding
    torch.testing.assert_close(powers, powers.round(), atol=1e-5, rtol=0)
    assert set(powers.round().long().tolist()) <= {0, 1, 2, 3, 4}  # at most 2 + 2 couplings per element
    assert (jac[nz] > 0).all() and not torch.allclose(jac, torch.eye(d, dtype=torch.float64))
    assert float(torch.linalg.slogdet(jac)[1]) == pytest.approx(hand_logdet, abs=1e-5)
    # log_prob = sum of standard-normal log densities of the latents + hand log-dets
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    flat = torch.cat([v.flatten(1) for v in latents], 1)
    ref = normal.log_prob(flat).sum(1) + hand_logdet + _hand_logit_logdet(x)
    torch.testing.assert_close(flow.log_prob(x, dequantize=False), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(flat[0], jac @ y[0].flatten())  # a linear map at initialisation
    bits = -(ref - d * math.log(256)) / (d * math.log(2))
    torch.testing.assert_close(flow.nll_bits(x, dequantize=False), bits, atol=1e-7, rtol=0)


# -- gradients of the JSD term reach the flow -------------------------------------------------------
def _tiny_segmenter(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return ood.models.build("fcn", num_classes=C, in_channels=1, width=8)


def test_jsd_gradient_reaches_the_flow_through_pasted_samples():
    torch.manual_seed(0)
    flow = PatchFlow(channels=1, levels=2, steps=2, hidden=8).train()
    seg = _tiny_segmenter().train()
    x = torch.rand(4, 1, S, S, generator=torch.Generator().manual_seed(1))
    patches = flow.sample(4, 12, generator=torch.Generator().manual_seed(2))
    pasted, mask = paste_patches(x, patches, torch.tensor([0, 5, 20, 10]), torch.tensor([3, 20, 0, 10]))
    jsd = jsd_to_uniform(seg(pasted)).masked_select(mask).mean()
    jsd.backward()
    # at initialisation only the coupling nets' (zero) last layers can receive a gradient through
    # their outputs; every one of them must
    for net in coupling_nets(flow):
        assert net.net[-1].weight.grad is not None and net.net[-1].weight.grad.abs().sum() > 0
        assert net.net[-1].bias.grad.abs().sum() > 0

    # with generic weights every parameter of the flow receives a gradient
    flow = randomised(PatchFlow(channels=1, levels=2, steps=2, hidden=8), seed=3).train()
    patches = flow.sample(4, 12, generator=torch.Generator().manual_seed(2))
    pasted, mask = paste_patches(x, patches, torch.tensor([0, 5, 20, 10]), torch.tensor([3, 20, 0, 10]))
    jsd_to_uniform(seg(pasted)).masked_select(mask).mean().backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_joint_task_jsd_gradient_reaches_the_flow():
    torch.manual_seed(0)
    flow = randomised(PatchFlow(channels=1, levels=2, steps=2, hidden=8), seed=5).train()
    seg = _tiny_segmenter().train()
    data = scenes(4, 9)
    task = _JointTraining(seg, flow, JOINT_T, hflip=False)
    parts = task.losses(*data.tensors)
    assert set(parts) == {"loss", "ce", "jsd", "nll_bits"}
    total = parts["ce"] + JOINT_T["beta"] * parts["jsd"] + JOINT_T["lam"] * parts["nll_bits"]
    torch.testing.assert_close(parts["loss"], total)
    parts["jsd"].backward()
    for net in coupling_nets(flow):
        for p in net.parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in seg.parameters())


# -- pasting ---------------------------------------------------------------------------------------
def test_pasted_labels_are_exactly_the_pasted_pixels():
    g = torch.Generator().manual_seed(0)
    n, ch, h, w, s = 4, 3, 20, 28, 6
    x = torch.rand(n, ch, h, w, generator=g)  # in [0, 1): the sentinel 2.0 never occurs
    patches = torch.full((n, ch, s, s), 2.0, requires_grad=True)
    tops, lefts = torch.tensor([0, h - s, 7, 3]), torch.tensor([0, w - s, 11, w - s])
    pasted, mask = paste_patches(x, patches, tops, lefts)
    assert pasted.shape == x.shape and mask.shape == (n, h, w) and mask.dtype == torch.bool
    for c in range(ch):
        assert torch.equal(mask, pasted[:, c] == 2.0)
    expected = torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        expected[i, tops[i]:tops[i] + s, lefts[i]:lefts[i] + s] = True
    assert torch.equal(mask, expected)
    outside = ~mask.unsqueeze(1).expand_as(x)
    assert torch.equal(pasted[outside], x[outside])  # bit for bit
    assert pasted.detach()[outside].numpy().tobytes() == x[outside].numpy().tobytes()
    # differentiable in the patches (one per pasted pixel), not an alias of x
    pasted.sum().backward()
    torch.testing.assert_close(patches.grad, torch.ones_like(patches))
    # rectangular patches too
    _, m = paste_patches(x[:1], torch.zeros(1, ch, 4, 9), torch.tensor([2]), torch.tensor([5]))
    assert m.sum() == 36 and m[0, 2:6, 5:14].all()


@pytest.mark.parametrize("top,left", [(15, 0), (0, 23), (-1, 0), (0, -2), (20, 28)])
def test_a_patch_that_does_not_fit_is_rejected(top, left):
    x = torch.rand(2, 1, 20, 28)
    with pytest.raises(ValueError, match="does not fit"):
        paste_patches(x, torch.zeros(2, 1, 6, 6), torch.tensor([0, top]), torch.tensor([0, left]))


def test_cross_entropy_ignores_pasted_pixels(monkeypatch):
    """Spy on the mask that paste_patches returns and on the target given to cross_entropy."""
    seen: dict = {}
    real_paste, real_ce = nflowjs_module.paste_patches, F.cross_entropy

    def paste_spy(*args):
        pasted, mask = real_paste(*args)
        seen["mask"] = mask
        return pasted, mask

    def ce_spy(logits, target, **kw):
        seen["target"], seen["logits"], seen["kw"] = target, logits, kw
        return real_ce(logits, target, **kw)

    monkeypatch.setattr(nflowjs_module, "paste_patches", paste_spy)
    monkeypatch.setattr(nflowjs_module.F, "cross_entropy", ce_spy)
    torch.manual_seed(0)
    flow = PatchFlow(channels=1, levels=2, steps=1, hidden=8).train()
    x, y = scenes(4, 3).tensors
    parts = _JointTraining(_tiny_segmenter().train(), flow, JOINT_T, hflip=False).losses(x, y)
    mask, target = seen["mask"], seen["target"]
    assert seen["kw"].get("ignore_index") == IGNORE_INDEX
    assert mask.any() and (target[mask] == IGNORE_INDEX).all()
    assert torch.equal(target[~mask], y[~mask])  # other pixels keep their labels (void stays void)
    assert torch.equal(target, y.masked_fill(mask, IGNORE_INDEX))
    # the CE is the mean over the inlier pixels only, and the JSD the mean over the pasted ones
    logits = seen["logits"].detach()
    keep = target != IGNORE_INDEX
    logp = torch.log_softmax(logits, 1)
    ce_hand = -logp.gather(1, target.clamp(max=C - 1).unsqueeze(1))[:, 0][keep].mean()
    torch.testing.assert_close(parts["ce"].detach(), ce_hand)
    torch.testing.assert_close(parts["jsd"].detach(), jsd_to_uniform(logits)[mask].mean())


# -- the detector end to end -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def baseline() -> torch.nn.Module:
    return _tiny_segmenter(0).eval()


@pytest.fixture(scope="module")
def fitted(baseline):
    before = {k: v.clone() for k, v in baseline.state_dict().items()}
    det = D.build("nflowjs", model=baseline, dense=True, train=TRAIN, seed=0)
    det.fit(scenes(32, 0), val=scenes(8, 1), progress=False)
    return det, before


@pytest.fixture(scope="module")
def test_x() -> torch.Tensor:
    return torch.rand(20, 1, S, S, generator=torch.Generator().manual_seed(11))


def test_score_map_is_minus_jsd_of_the_fine_tuned_segmenter(fitted, test_x):
    det, _ = fitted
    maps = det.score_map(test_x)
    assert maps.shape == (20, S, S) and maps.dtype == torch.float32
    logits = det.segment(test_x)
    assert logits.shape == (20, C, S, S)
    torch.testing.assert_close(maps, -jsd_to_uniform(logits), rtol=0, atol=0)
    assert (maps <= 0).all() and (maps >= -math.log(2) - 1e-6).all()
    torch.testing.assert_close(det.score(test_x), maps.flatten(1).mean(1), rtol=1e-6, atol=1e-7)


def test_score_convention_by_hand(fitted, tmp_path):
    """Higher = more OOD: a uniform pixel scores 0, a confident one -JSD (hand value for C = 2)."""
    class Fixed(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), 2, 1, 2)
            out[:, 0, 0, 0], out[:, 1, 0, 0] = 30.0, -30.0
            return out

    det, _ = fitted
    path = tmp_path / "nflowjs.pt"
    det.save(path)
    again = D.load(path, model=det.model)
    again.networks["segmenter"] = Fixed()
    got = again.score_map(torch.zeros(1, 1, 1, 2))
    assert float(got[0, 0, 1]) == pytest.approx(0.0, abs=1e-7)
    assert float(got[0, 0, 0]) == pytest.approx(-0.75 * math.log(4 / 3), abs=1e-6)
    assert got[0, 0, 1] > got[0, 0, 0]


def test_maps_do_not_depend_on_batch_size_or_order(fitted, test_x):
    det, _ = fitted
    x = torch.cat([test_x, test_x.flip(-1), 1 - test_x])  # 60 scenes

    def maps(batch: int, order: torch.Tensor) -> torch.Tensor:
        out = torch.empty(len(x), S, S)
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            out[idx] = det.score_map(x[idx])
        return out

    ref = maps(64, torch.arange(len(x)))
    tol = dict(rtol=1e-3, atol=1e-4 * max(1.0, float(ref.abs().max())))  # as tests/test_detector_contract.py
    torch.testing.assert_close(maps(7, torch.arange(len(x))), ref, **tol)
    torch.testing.assert_close(maps(7, torch.randperm(len(x), generator=torch.Generator().manual_seed(0))), ref, **tol)


def test_save_load_round_trip_and_criteria(fitted, test_x, tmp_path):
    det, _ = fitted
    path = tmp_path / "nflowjs.pt"
    det.save(path)
    again = D.load(path, model=det.model)
    assert type(again).__name__ == "NFlowJS" and again.criterion == "jsd"
    assert again.train_hparams == det.train_hparams and again.history == det.history
    torch.testing.assert_close(again.score_map(test_x), det.score_map(test_x), rtol=0, atol=0)
    for k in det.networks:  # the flow too (its fixed permutations are buffers)
        a, b = det.networks[k].state_dict(), again.networks[k].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a), k
    x8 = test_x[:4, :, :8, :8]
    torch.testing.assert_close(again.flow.log_prob(x8, dequantize=False), det.flow.log_prob(x8, dequantize=False),
                               rtol=0, atol=0)
    # the ablation criteria score the same fine-tuned segmenter
    logits = det.segment(test_x)
    entropy = D.load(path, model=det.model, criterion="entropy")
    torch.testing.assert_close(entropy.score_map(test_x), entropy_score(logits), rtol=1e-6, atol=1e-6)
    msp = D.load(path, model=det.model, criterion="msp")
    torch.testing.assert_close(msp.score_map(test_x), msp_score(logits), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="criterion"):
        D.load(path, model=det.model, criterion="energy")


def test_fit_leaves_the_baseline_alone_and_records_both_phases(fitted, baseline, test_x):
    det, before = fitted
    after = baseline.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert det.segmenter is not baseline
    tuned = det.segmenter.state_dict()
    assert any(not torch.equal(tuned[k], before[k]) for k in before)  # the copy was fine-tuned
    assert [h["phase"] for h in det.history] == ["flow", "joint"]
    assert {"train_nll_bits"} <= set(det.history[0])
    assert {"train_loss", "train_ce", "train_jsd", "train_nll_bits", "val_ce", "val_acc"} <= set(det.history[1])
    assert all(math.isfinite(v) for h in det.history for k, v in h.items() if k != "phase")
    assert not det.segmenter.training and not det.flow.training
    # the negatives the detector trains on: one flow sample pasted per scene, reproducible by seed
    pasted, mask = det.negatives(test_x[:3], side=8, seed=2)
    again, mask2 = det.negatives(test_x[:3], side=8, seed=2)
    assert torch.equal(pasted, again) and torch.equal(mask, mask2)
    assert mask.sum((1, 2)).tolist() == [64, 64, 64]
    outside = ~mask.unsqueeze(1)
    assert torch.equal(pasted[outside], test_x[:3][outside])


def test_a_fixed_seed_gives_identical_weights(fitted, baseline):
    det, _ = fitted
    twin = D.build("nflowjs", model=baseline, dense=True, train=TRAIN, seed=0).fit(
        scenes(32, 0), val=scenes(8, 1), progress=False)
    other = D.build("nflowjs", model=baseline, dense=True, train=TRAIN, seed=1).fit(
        scenes(32, 0), val=scenes(8, 1), progress=False)
    for k in det.networks:
        a, b, c = (d.networks[k].state_dict() for d in (det, twin, other))
        assert all(torch.equal(a[n], b[n]) for n in a), k
        assert any(not torch.equal(a[n], c[n]) for n in a if a[n].is_floating_point()), k
    assert twin.history == det.history


def test_training_parameters_are_validated(baseline, monkeypatch):
    with pytest.raises(TypeError, match="nflowjs: unknown parameter"):
        D.build("nflowjs", model=baseline, dense=True, train={"epoch": 1})

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(nflowjs_module, "fit", no_training)
    data = scenes(4, 0)
    for bad in ({"patch_max": S + 4}, {"patch_min": 16, "patch_max": 8}, {"patch_min": 1, "patch_max": 2},
                {"crop": 12}):  # the largest patch (16) must fit the crop too
        det = D.build("nflowjs", model=baseline, dense=True, train={**TRAIN, **bad})
        with pytest.raises(ValueError, match="nflowjs: patch sides"):
            det.fit(data, progress=False)
        assert not det.fitted
    det = D.build("nflowjs", model=baseline, dense=True, train={**TRAIN, "crop": S + 8})
    with pytest.raises(ValueError, match=f"nflowjs: crop {S + 8} is larger than the {S}x{S} scenes"):
        det.fit(data, progress=False)


def test_joint_training_on_crops_sees_crops_and_validates_on_whole_scenes(baseline):
    seg = _tiny_segmenter(0)
    seen = []
    seg.register_forward_pre_hook(lambda m, args: seen.append((m.training, tuple(args[0].shape[-2:]))))
    det = D.build("nflowjs", model=seg.eval(), dense=True, train={**TRAIN, "crop": 24, "flow_epochs": 0}, seed=0)
    det.fit(scenes(16, 0), val=scenes(8, 1), progress=False)
    assert {s for t, s in seen if t} == {(24, 24)} and (False, (S, S)) in seen


def test_a_patch_range_without_a_multiple_of_the_factor_is_rejected_before_training(baseline):
    det = D.build("nflowjs", model=baseline, dense=True, train={**TRAIN, "patch_min": 5, "patch_max": 7})
    with pytest.raises(ValueError, match="nflowjs"):
        det.fit(scenes(4, 0), progress=False)


def test_cosine_anneals_both_learning_rates_to_lr_min_as_densehybrid():
    """DenseHybrid's fine-tuning schedule, lr_min + (lr - lr_min)(1 + cos(pi t / T)) / 2: the segmenter
    from lr to lr_min, the flow by the same factor; constant leaves both alone."""
    flow = PatchFlow(channels=1, levels=2, steps=1, hidden=8)
    T = {**JOINT_T, "lr": 1e-3, "flow_lr": 4e-3, "schedule": "cosine", "lr_min": 1e-4}
    task = _JointTraining(_tiny_segmenter(), flow, T, hflip=False)
    opt = task.optimizers()["joint"]
    sched = task.schedulers({"joint": opt}, total_steps=10)["joint"]
    seen = []
    for _ in range(10):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    seen.append([g["lr"] for g in opt.param_groups])
    assert seen[0] == pytest.approx([1e-3, 4e-3]) and seen[-1] == pytest.approx([1e-4, 4e-4])
    assert seen[5][0] == pytest.approx(1e-4 + (1e-3 - 1e-4) * (1 + math.cos(math.pi * 5 / 10)) / 2)
    assert _JointTraining(_tiny_segmenter(), flow, {**T, "schedule": "constant"}, hflip=False).schedulers({"joint": opt}, 10) == {}
    det = D.build("nflowjs", model=_tiny_segmenter().eval(), dense=True, train={**TRAIN, "schedule": "cosine", "lr_min": 1.0})
    with pytest.raises(ValueError, match="lr_min 1.0 must not exceed lr"):
        det.fit(scenes(4, 0), progress=False)


@pytest.mark.parametrize("bn", ["frozen", "train"])
def test_frozen_batchnorm_keeps_the_clean_scene_statistics(bn):
    seg = _tiny_segmenter(0).eval()
    stats = {k: v.clone() for k, v in seg.state_dict().items() if "running" in k}
    assert stats, "the segmenter has BatchNorm layers"
    det = D.build("nflowjs", model=seg, dense=True, train={**TRAIN, "bn": bn, "flow_epochs": 0}, seed=0)
    det.fit(scenes(16, 0), progress=False)
    after = det.segmenter.state_dict()
    same = all(torch.equal(after[k], v) for k, v in stats.items())
    assert same == (bn == "frozen")
    trained = [k for k, v in after.items() if "running" not in k and "num_batches" not in k
               and not torch.equal(v, seg.state_dict()[k])]
    assert trained  # the weights themselves still train
