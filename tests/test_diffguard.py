"""DiffGuard against independent references and hand computations: DDIM inversion and denoising
(diffusers' DDIMInverseScheduler / DDIMScheduler, and a reconstruction bound at shallow depth),
classifier-free and classifier guidance (by hand from the raw UNet and the classifier), Grad-CAM
(recomputed by hand) and the distinct semantic guidance mask, per-sample randomness, the adaptive
early stop, loading diffusers pipelines (local folders; an unreachable hub id offline),
save/load, parameter validation and the DDIM timestep sub-sequence.

Every network is tiny and random (untrained) unless a test trains one for an epoch: the algebra
of the method does not depend on the weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

import ood.detectors as D
import ood.models
from ood.detectors.base import sample_generators
from ood.detectors.diffguard import DiffGuard, ddim_timesteps
from ood.models.diffusion import (Diffusion, PretrainedNotFound, class_conditional_unet, config_of,
                                  ddpm_alphas_cumprod, from_pretrained)
from ood.models.gradcam import grad_cam

C = 3  # classes
S = 16  # image side (SmallCNN needs a multiple of 8)
SCHEDULE = {"steps": 1000, "beta_start": 1e-4, "beta_end": 0.02}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def clf() -> torch.nn.Module:
    torch.manual_seed(0)
    # as the pipeline loads it (ood.models.load): eval mode, parameters left requiring grad
    return ood.models.SmallCNN(C, in_channels=1, image_size=S, width=8, feature_dim=16).eval()


@pytest.fixture(scope="module")
def unet() -> torch.nn.Module:
    torch.manual_seed(1)
    return class_conditional_unet(num_classes=C, in_channels=1, image_size=S, widths=(8, 16), layers=1,
                                  attention=False).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    return torch.rand(4, 1, S, S, generator=g)


@pytest.fixture(scope="module")
def make(clf, unet):
    """A DiffGuard on the random UNet, without training."""
    def build(**params) -> DiffGuard:
        det = D.build("diffguard", model=clf, **params)
        det.diffusion = Diffusion(unet, ddpm_alphas_cumprod(), num_classes=C).eval()
        det.networks = {"unet": unet}
        det.configs = {"unet": config_of(unet), "schedule": dict(SCHEDULE)}
        det.fitted = True
        return det
    return build


def unet_eps(unet, z, t, labels) -> torch.Tensor:
    """ε straight from the diffusers UNet (no wrapper)."""
    with torch.no_grad():
        return unet(z, torch.full((len(z),), t, dtype=torch.long), class_labels=labels).sample


def _offline(monkeypatch):
    """No hub traffic: the env variable, and the constants huggingface_hub / diffusers read at import."""
    import huggingface_hub.constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    try:
        import diffusers.utils.hub_utils
        monkeypatch.setattr(diffusers.utils.hub_utils, "HF_HUB_OFFLINE", True, raising=False)
    except ImportError:  # pragma: no cover
        pass


# -- the DDIM sub-sequence -------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [1, 10, 25, 30, 50, 1000])
def test_ddim_timesteps_match_diffusers_leading_spacing(steps):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000)
    sched.set_timesteps(steps)
    assert ddim_timesteps(1000, steps) == sched.timesteps.flip(0).tolist()
    if steps == 10:
        assert ddim_timesteps(1000, 10) == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]


def test_schedule_takes_the_first_depth_fraction(make):
    assert make(steps=50, depth=0.1).schedule() == [0, 20, 40, 60, 80]
    assert make(steps=25, depth=1.0).schedule() == list(range(0, 1000, 40))
    assert make(steps=25, depth=0.001).schedule() == [0]  # at least one step


def test_ddpm_alphas_cumprod_match_diffusers():
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02).alphas_cumprod
    torch.testing.assert_close(ddpm_alphas_cumprod(), ref.float(), atol=1e-6, rtol=0)


# -- DDIM inversion and denoising ----------------------------------------------------------------------
def test_invert_and_denoise_match_diffusers_ddim_schedulers(make, unet, images):
    """Inversion = DDIMInverseScheduler steps (ε∅ at the target level's timestep, from ᾱ = 1);
    unguided denoising = DDIMScheduler steps (η = 0, final ᾱ = 1), both without clipping."""
    from diffusers import DDIMInverseScheduler, DDIMScheduler

    det = make(steps=50, depth=0.1)
    ts = det.schedule()
    z0 = det.diffusion.encode(images)
    z, depth = det.invert(z0, ts)
    assert depth.tolist() == [len(ts)] * len(images)

    null = torch.full((len(images),), C, dtype=torch.long)
    inv = DDIMInverseScheduler(num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=True)
    inv.set_timesteps(50)
    ref = z0.clone()
    for t in inv.timesteps[:len(ts)].tolist():
        ref = inv.step(unet_eps(unet, ref, t, null), t, ref).prev_sample
    torch.testing.assert_close(z, ref, atol=1e-5, rtol=1e-5)

    fwd = DDIMScheduler(num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=True)
    fwd.set_timesteps(50)
    back = z.clone()
    for t in fwd.timesteps[-len(ts):].tolist():  # 80, 60, ..., 0
        back = fwd.step(unet_eps(unet, back, t, null), t, back, eta=0.0).prev_sample
    torch.testing.assert_close(det.denoise(z, depth, ts, None), ((back + 1) / 2).clamp(0, 1), atol=1e-5, rtol=1e-5)


def test_unguided_reconstruction_is_close_at_shallow_depth_and_drifts_with_depth(make, images):
    """DDIM (η = 0) is nearly invertible for small steps: with a random UNet, 5 steps up to t = 80
    reconstruct the input to a max abs error (pixels in [0, 1]) of 0.0153 for these fixtures
    (0.009-0.015 over four other seeds); the bound 0.05 is ~3x that. Half the schedule (t up to 480)
    measured 0.25 and the whole schedule (t up to 980) 0.999: the image is lost, so the bound is
    not met by just any reconstruction."""
    def error(depth: float) -> float:
        det = make(steps=50, depth=depth)
        ts = det.schedule()
        z, d = det.invert(det.diffusion.encode(images), ts)
        return float((det.denoise(z, d, ts, None) - images).abs().max())

    shallow, mid, full = error(0.1), error(0.5), error(1.0)
    assert shallow < 0.05, shallow
    assert shallow < mid < full
    assert full > 0.5, full
    # the public entry point does the same (unguided)
    det = make(steps=50, depth=0.1)
    r = det.reconstruct(images, guided=False)
    assert float((r - images).abs().max()) < 0.05


# -- guidance ------------------------------------------------------------------------------------------
def test_diffusion_eps_null_class_is_the_last_label(unet, images):
    diff = Diffusion(unet, ddpm_alphas_cumprod(), num_classes=C).eval()
    z = images * 2 - 1
    with torch.no_grad():
        e_none = diff.eps(z, 37)
        e_1 = diff.eps(z, 37, torch.ones(4, dtype=torch.long))
    torch.testing.assert_close(e_none, unet_eps(unet, z, 37, torch.full((4,), C)), atol=0, rtol=0)
    torch.testing.assert_close(e_1, unet_eps(unet, z, 37, torch.ones(4, dtype=torch.long)), atol=0, rtol=0)
    assert (e_none - e_1).abs().max() > 1e-4  # the class does change ε (the test could fail)
    assert diff.conditional and diff.steps == 1000 and diff.channels == 1


@pytest.mark.parametrize("w", [0.0, 1.0, 3.0])
def test_cfg_guided_eps_is_the_weighted_combination(make, unet, images, w):
    det = make(guidance="cfg", cam_cut=0.0, w=w)
    z = images * 2 - 1
    y = torch.tensor([0, 1, 2, 1])
    t = 120
    a = det.diffusion.alphas_cumprod[t]
    with torch.no_grad():
        got = det._guided_eps(z, t, a, y, None, None)
    e0 = unet_eps(unet, z, t, torch.full((4,), C))
    ec = unet_eps(unet, z, t, y)
    assert (ec - e0).abs().max() > 1e-4
    torch.testing.assert_close(got, e0 + w * (ec - e0), atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        if w == 1.0:
            torch.testing.assert_close(got, det.diffusion.eps(z, t, y), atol=1e-5, rtol=1e-5)
        if w == 0.0:
            torch.testing.assert_close(got, det.diffusion.eps(z, t), atol=1e-5, rtol=1e-5)
        # y=None is the unguided ε∅ whatever the weight
        torch.testing.assert_close(det._guided_eps(z, t, a, None, None, None), e0, atol=1e-6, rtol=0)


def _grad_cam_by_hand(model, x, y, size):
    k = model.map_points[-1]
    h = model.normalize(x)
    with torch.enable_grad():
        a = model.body[:k + 1](h).detach().requires_grad_(True)
        logits = model.fc(model.body[k + 1:](a))
        g, = torch.autograd.grad(logits[torch.arange(len(x)), y].sum(), a)
    cam = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a.detach()).sum(1, keepdim=True))
    return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0], cam


def test_grad_cam_matches_a_hand_computation_and_is_min_max_normalised(clf, images):
    y = torch.tensor([0, 1, 2, 0])
    cam = grad_cam(clf, images, y)
    assert cam.shape == (4, S, S)
    up, raw = _grad_cam_by_hand(clf, images, y, (S, S))
    nonflat = 0
    for i in range(4):
        if float(up[i].max() - up[i].min()) > 1e-8:
            nonflat += 1
            ref = (up[i] - up[i].min()) / (up[i].max() - up[i].min())
            torch.testing.assert_close(cam[i], ref, atol=1e-5, rtol=1e-5)
            assert float(cam[i].min()) == 0.0 and abs(float(cam[i].max()) - 1.0) < 1e-6
        else:
            assert torch.all(cam[i] == 0)  # a flat map becomes 0
    assert nonflat >= 2, "the fixture should give informative maps"
    assert float(cam.min()) >= 0 and float(cam.max()) <= 1 + 1e-6
    # another size: the same raw map upsampled there
    small = grad_cam(clf, images, y, size=(8, 8))
    up8, _ = _grad_cam_by_hand(clf, images, y, (8, 8))
    i = next(i for i in range(4) if float(up8[i].max() - up8[i].min()) > 1e-8)
    torch.testing.assert_close(small[i], (up8[i] - up8[i].min()) / (up8[i].max() - up8[i].min()), atol=1e-5, rtol=1e-5)
    # the classifier's weights receive no gradient
    assert all(p.grad is None for p in clf.parameters())


def test_distinct_semantic_guidance_mask(make, unet, clf, images):
    y = torch.tensor([0, 1, 2, 0])
    z0 = images * 2 - 1
    det = make(guidance="cfg", cam_cut=0.5, w=4.0)
    mask = det._mask(images, y, z0)
    cam = grad_cam(clf, images, y)
    assert mask.shape == z0.shape and mask.dtype == torch.bool
    assert torch.equal(mask, (cam > 0.5).unsqueeze(1).expand_as(z0))
    assert 0 < int(mask.sum()) < mask.numel()  # both regions present
    assert make(guidance="cfg", cam_cut=0.0)._mask(images, y, z0) is None
    assert make(guidance="classifier", cam_cut=0.5)._mask(images, y, z0) is None

    t = 200
    a = det.diffusion.alphas_cumprod[t]
    with torch.no_grad():
        got = det._guided_eps(z0, t, a, y, mask, None)
    e0 = unet_eps(unet, z0, t, torch.full((4,), C))
    ec = unet_eps(unet, z0, t, y)
    cfg = e0 + 4.0 * (ec - e0)
    torch.testing.assert_close(got[mask], cfg[mask], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[~mask], e0[~mask], atol=1e-5, rtol=1e-5)
    assert (cfg - e0)[~mask].abs().max() > 1e-4  # the mask matters


def test_classifier_guidance_scale_zero_is_unconditional_and_gradient_by_hand(make, unet, clf, images):
    z = images * 2 - 1
    y = torch.tensor([2, 0, 1, 2])
    t = 300
    keys = ["a", "b", "c", "d"]
    e0 = unet_eps(unet, z, t, torch.full((4,), C))
    det0 = make(guidance="classifier", scale=0.0)
    a = det0.diffusion.alphas_cumprod[t]
    got0 = det0._guided_eps(z, t, a, y, None, sample_generators(0, keys))
    torch.testing.assert_close(got0, e0, atol=1e-6, rtol=0)

    # cut_min = 1: one cutout is the whole image, so the gradient is that of log p(y | x̂) by hand
    det = make(guidance="classifier", scale=5.0, cutouts=1, cut_min=1.0)
    got = det._guided_eps(z, t, a, y, None, sample_generators(0, keys))
    fac = (1 - a).sqrt()
    x0 = ((z - fac * e0) / a.sqrt()).clamp(-1, 1)
    x_in = (fac * x0 + (1 - fac) * z).requires_grad_(True)
    with torch.enable_grad():
        logp = F.log_softmax(clf(((x_in + 1) / 2).clamp(0, 1)), dim=1)[torch.arange(4), y].sum()
        g, = torch.autograd.grad(logp, x_in)
    assert g.abs().max() > 0
    torch.testing.assert_close(got, e0 - fac * 5.0 * g, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("params", [dict(guidance="classifier", scale=3.0, cutouts=2),
                                    dict(guidance="cfg", w=3.0, cam_cut=0.3)])
def test_scores_are_per_sample(make, images, params):
    det = make(steps=10, depth=0.3, **params)
    keys = [("id", i) for i in range(4)]
    batch = det.scores(images, keys)
    for i in range(4):
        alone = det.scores(images[i:i + 1], keys[i:i + 1])
        for name in batch:
            torch.testing.assert_close(alone[name], batch[name][i:i + 1], atol=1e-5, rtol=1e-5)
    # reversed batch, reversed scores
    rev = det.scores(images.flip(0), keys[::-1])
    for name in batch:
        torch.testing.assert_close(rev[name].flip(0), batch[name], atol=1e-5, rtol=1e-5)
    assert torch.equal(det(images, keys), batch["logit"])  # the headline (``det.score`` is shadowed: see below)
    if params["guidance"] == "classifier":  # the cutouts follow the keys: other keys, other scores
        other = det.scores(images, [("other", i) for i in range(4)])
        assert not torch.allclose(other["pixel"], batch["pixel"], atol=1e-7, rtol=0)


@pytest.mark.parametrize("guidance", ["cfg", "classifier"])
def test_scores_are_the_distances_between_input_and_reconstructions(make, clf, images, guidance):
    from ood.models.similarity import feature_distance

    det = make(steps=10, depth=0.3, guidance=guidance, w=3.0, cam_cut=0.3, scale=3.0, cutouts=2)
    keys = [("s", i) for i in range(4)]
    got = det.scores(images, keys)
    r = det.reconstruct(images, keys=keys)
    r_free = det.reconstruct(images, keys=keys, guided=False)
    assert (r - r_free).abs().max() > 1e-4  # guidance changes the reconstruction
    with torch.no_grad():
        lx, lr, lf = clf(images), clf(r), clf(r_free)
        ref = {"logit": (lx - lr).abs().sum(1), "pixel": (images - r).abs().mean(dim=(1, 2, 3)),
               "unguided": (lr - lf).abs().sum(1),
               "feature": feature_distance(clf.feature_maps(images), clf.feature_maps(r))}
    assert set(got) == set(ref)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], atol=1e-5, rtol=1e-4)
        assert got[name].shape == (4,) and got[name].dtype == torch.float32


def test_score_method_is_callable(make, images):
    det = make(steps=10, depth=0.1, guidance="cfg", cam_cut=0.0)
    keys = [("id", i) for i in range(4)]
    assert torch.equal(det.score(images, keys), det.scores(images, keys)["logit"])


def test_cfg_with_an_unconditional_model_says_what_to_use(make, images):
    det = make(steps=10, depth=0.1, guidance="cfg", cam_cut=0.0)
    det.diffusion.num_classes = None  # as an unconditional pipeline (google/ddpm-cifar10-32) loads
    with pytest.raises(ValueError, match="guidance='classifier'"):
        det.scores(images, [("id", i) for i in range(4)])


def test_grad_cam_on_a_frozen_classifier(clf, images):
    import copy

    frozen = copy.deepcopy(clf).requires_grad_(False)
    y = torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(grad_cam(frozen, images, y), grad_cam(clf, images, y))


# -- early stop ----------------------------------------------------------------------------------------
def test_early_stop(make, images):
    z0 = images * 2 - 1
    det = make(steps=50, depth=0.2, early_stop=True, psnr_stop=199.0)
    ts = det.schedule()
    z, depth = det.invert(z0, ts)
    assert depth.tolist() == [1] * 4  # every image stops after its first step
    one, _ = make(steps=50, depth=0.2).invert(z0, ts[:1])
    torch.testing.assert_close(z, one, atol=0, rtol=0)

    z, depth = make(steps=50, depth=0.2, early_stop=True, psnr_stop=0.0).invert(z0, ts)
    assert depth.tolist() == [len(ts)] * 4  # none stops
    full, _ = make(steps=50, depth=0.2).invert(z0, ts)
    torch.testing.assert_close(z, full, atol=0, rtol=0)

    # a threshold in the middle of the PSNR trajectories: each image stops at the first level
    # where 20·log10(255 / RMSE) of its latent to the input falls below it (recomputed here)
    plain = make(steps=50, depth=0.2)
    levels = [plain.invert(z0, ts[:k])[0] for k in range(1, len(ts) + 1)]
    psnr = torch.stack([20 * torch.log10(255 / (lv - z0).pow(2).flatten(1).mean(1).sqrt()) for lv in levels])
    thr = float(psnr[len(ts) // 2].median())
    expect = [next((k + 1 for k in range(len(ts)) if psnr[k, i] < thr), len(ts)) for i in range(4)]
    z, depth = make(steps=50, depth=0.2, early_stop=True, psnr_stop=thr).invert(z0, ts)
    assert depth.tolist() == expect
    assert len(set(expect)) > 1  # the images really stop at different depths
    for i, k in enumerate(expect):
        torch.testing.assert_close(z[i], levels[k - 1][i], atol=1e-6, rtol=0)
    # denoising starts at each image's own depth: the same as denoising it alone along ts[:k]
    r = plain.denoise(z, depth, ts, None)
    for i, k in enumerate(expect):
        alone = plain.denoise(z[i:i + 1], torch.tensor([k]), ts[:k], None)
        torch.testing.assert_close(r[i:i + 1], alone, atol=1e-6, rtol=0)


# -- pre-trained pipelines ----------------------------------------------------------------------------
def _tiny_pipeline(path, class_embeds: int | None = None):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(3)
    net = UNet2DModel(sample_size=S, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                      down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                      norm_num_groups=8, num_class_embeds=class_embeds).eval()
    pipe = DDPMPipeline(unet=net, scheduler=DDPMScheduler())
    pipe.save_pretrained(str(path))
    return pipe


def test_from_pretrained_local_folder(tmp_path, monkeypatch, images):
    _offline(monkeypatch)
    pipe = _tiny_pipeline(tmp_path / "ddpm")
    diff = from_pretrained(str(tmp_path / "ddpm"))
    assert not diff.conditional and diff.num_classes is None and diff.vae is None
    torch.testing.assert_close(diff.alphas_cumprod, pipe.scheduler.alphas_cumprod.float(), atol=0, rtol=0)
    z = images * 2 - 1
    with torch.no_grad():
        ref = pipe.unet(z, torch.full((4,), 250)).sample
        torch.testing.assert_close(diff.eps(z, 250), ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(diff.encode(images), z)
    torch.testing.assert_close(diff.decode(z), images, atol=1e-6, rtol=0)

    _tiny_pipeline(tmp_path / "cond", class_embeds=C + 1)
    cond = from_pretrained(tmp_path / "cond")
    assert cond.conditional and cond.num_classes == C
    assert from_pretrained(tmp_path / "cond", num_classes=2).num_classes == 2


def test_from_pretrained_unreachable_hub_id_names_the_local_folder_alternative(monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(PretrainedNotFound) as info:
        from_pretrained("nobody/does-not-exist-xyz")
    msg = str(info.value)
    assert "nobody/does-not-exist-xyz" in msg
    assert "local" in msg and "folder" in msg
    assert "HF_HUB_OFFLINE" in msg
    assert isinstance(info.value, FileNotFoundError)


# -- save / load -----------------------------------------------------------------------------------------
def _tiny_train_set(n: int = 32) -> TensorDataset:
    g = torch.Generator().manual_seed(4)
    return TensorDataset(torch.rand(n, 1, S, S, generator=g), torch.arange(n) % C)


def test_save_load_of_a_trained_detector(tmp_path, clf, images):
    train = {"epochs": 1, "batch_size": 16, "widths": "8,16", "attention": False, "ema": 0.5,
             "device": "cpu", "amp": False}
    det = D.build("diffguard", model=clf, steps=10, depth=0.3, w=2.0, cam_cut=0.3, train=train, seed=7)
    det.fit(_tiny_train_set(), progress=False)
    assert det.fitted and set(det.networks) == {"unet"} and len(det.history) == 1
    assert det.configs["unet"]["num_class_embeds"] == C + 1 and det.configs["schedule"] == SCHEDULE
    keys = [("t", i) for i in range(4)]
    before = det.scores(images, keys)

    path = tmp_path / "diffguard.pt"
    det.save(path)
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt["networks"]) == {"unet"}
    loaded = D.load(path, model=clf)
    assert isinstance(loaded, DiffGuard) and loaded.seed == 7 and loaded.hparams == det.hparams
    for k, v in det.networks["unet"].state_dict().items():
        assert torch.equal(loaded.networks["unet"].state_dict()[k], v), k
    after = loaded.scores(images, keys)
    for name in before:
        assert torch.equal(before[name], after[name]), name
    # a scoring parameter overridden at load time changes the scores (the comparison could fail)
    other = D.load(path, model=clf, w=0.0).scores(images, keys)
    assert not torch.allclose(other["unguided"], before["unguided"])


def test_save_load_with_a_pretrained_pipeline_stores_no_weights(tmp_path, monkeypatch, clf, images):
    _offline(monkeypatch)
    folder = tmp_path / "ddpm"
    pipe = _tiny_pipeline(folder)
    det = D.build("diffguard", model=clf, guidance="classifier", scale=2.0, cutouts=2, steps=10, depth=0.2,
                  train={"pretrained": str(folder), "device": "cpu", "amp": False})
    det.fit(_tiny_train_set(8), progress=False)
    assert det.configs == {"pretrained": {"source": str(folder)}} and det.networks == {}
    keys = [("p", i) for i in range(4)]
    before = det.scores(images, keys)

    path = tmp_path / "dg_pre.pt"
    det.save(path)
    assert torch.load(path, weights_only=True)["networks"] == {}
    loaded = D.load(path, model=clf)
    assert loaded.diffusion is not None and not loaded.diffusion.conditional
    z = images * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.diffusion.eps(z, 40), pipe.unet(z, torch.full((4,), 40)).sample,
                                   atol=1e-6, rtol=0)
    after = loaded.scores(images, keys)
    for name in before:
        torch.testing.assert_close(after[name], before[name], atol=1e-6, rtol=0)


# -- parameters ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, name", [
    (dict(w=-1.0), "'w'"),
    (dict(guidance="x"), "'guidance'"),
    (dict(distance="nope"), "'distance'"),
    (dict(cam_cut=1.0), "'cam_cut'"),
    (dict(cut_min=0.0), "'cut_min'"),
    (dict(depth=0.0), "'depth'"),
    (dict(steps=0), "'steps'"),
    (dict(psnr_stop=-1.0), "'psnr_stop'"),
    (dict(train={"widths": "7,9"}), "widths"),
    (dict(train={"widths": "8,x"}), "widths"),
    (dict(train={"widths": ""}), "widths"),
    (dict(train={"p_uncond": 1.0}), "'p_uncond'"),
])
def test_bad_parameters_raise_value_error_naming_them(clf, params, name):
    with pytest.raises(ValueError, match=name) as info:
        D.build("diffguard", model=clf, **params)
    assert "diffguard" in str(info.value)


def test_unknown_parameter_is_a_type_error(clf):
    with pytest.raises(TypeError, match="'guidence'"):
        D.build("diffguard", model=clf, guidence="cfg")


def test_split_score_separates_evaluation_parameters():
    assert DiffGuard.split_score({"w": 2.0, "subset": 10}) == ({"w": 2.0}, {"subset": 10, "processes": 1})
    det_params, eval_params = DiffGuard.split_score({"w": 2.0, "subset": 10})
    assert det_params == {"w": 2.0} and eval_params["subset"] == 10
    assert DiffGuard.split_score({})[1]["subset"] is None
    with pytest.raises(ValueError, match="'subset'"):
        DiffGuard.split_score({"subset": 0})


@pytest.mark.parametrize("params", [dict(steps=10, depth=0.5, cam_cut=0.3), dict(steps=10, depth=0.3, cam_cut=0.0),
                                    dict(guidance="classifier", steps=10, depth=0.2, cutouts=2)])
def test_network_evaluations_count_every_pass_of_scores(make, clf, unet, images, monkeypatch, params):
    det = make(**params)
    calls = {"classifier": 0, "diffusion": 0}

    def counting(obj, method, kind):
        original = getattr(obj, method)

        def wrapper(*args, **kwargs):
            calls[kind] += len(args[0]) / len(images)  # evaluations per image (CFG batches two per image)
            return original(*args, **kwargs)
        monkeypatch.setattr(obj, method, wrapper)

    counting(clf, "forward", "classifier")
    counting(clf, "feature_maps", "classifier")
    counting(unet, "forward", "diffusion")
    det.scores(images, [("t", i) for i in range(len(images))])
    assert calls == det.network_evaluations()
