"""The training loop: learns, is reproducible, and resumes an interrupted run to the same weights."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

import ood.models
import ood.train


def toy_data(n: int = 192) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.3
    for c in range(3):  # a bright band per class: easy to learn
        x[y == c, :, 4 + 8 * c: 10 + 8 * c, :] += 0.7
    return TensorDataset(x.clamp(0, 1), y)


def fit(checkpoint=None, epochs: int = 3):
    torch.manual_seed(0)
    model = ood.models.build("cnn", num_classes=3, width=8, feature_dim=16)
    history = ood.train.train(model, toy_data(), toy_data(48), epochs=epochs, batch_size=32, lr=3e-3,
                              seed=1, device="cpu", checkpoint=checkpoint, progress=False)
    return model, history


def interrupt_after_epoch(monkeypatch, epoch: int, run) -> None:
    """Run ``run()`` and interrupt it right after the checkpoint of ``epoch`` is written."""
    real_save = ood.train.atomic_torch_save

    def save_then_stop(obj, path):
        real_save(obj, path)
        if len(obj["history"]) == epoch:
            raise KeyboardInterrupt
    monkeypatch.setattr(ood.train, "atomic_torch_save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(ood.train, "atomic_torch_save", real_save)


def test_learns_and_reports_history() -> None:
    model, history = fit()
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["val_acc"] > 0.9
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_same_seed_same_weights() -> None:
    a, _ = fit()
    b, _ = fit()
    for (k, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), k


def test_interrupted_run_resumes_from_checkpoint_to_identical_weights(tmp_path, monkeypatch) -> None:
    reference, ref_history = fit()
    ckpt = tmp_path / "run.ckpt"

    interrupt_after_epoch(monkeypatch, 2, lambda: fit(checkpoint=ckpt))
    assert ckpt.exists()

    resumed, history = fit(checkpoint=ckpt)
    assert history == ref_history
    for (k, p), q in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), k
    assert not ckpt.exists()  # removed once training finished


def test_checkpoint_of_another_configuration_is_ignored(tmp_path, capsys) -> None:
    ckpt = tmp_path / "run.ckpt"
    _, _ = fit(checkpoint=None)
    torch.save({"run": "something else"}, ckpt)
    _, history = fit(checkpoint=ckpt)
    assert len(history) == 3 and "another configuration" in capsys.readouterr().out


def test_device_auto_resolves_to_an_available_device() -> None:
    assert ood.train.resolve_device("auto").type in {"cpu", "cuda", "mps"}
    assert ood.train.resolve_device("cpu") == torch.device("cpu")


def test_hflip_flips_images_with_their_per_pixel_targets() -> None:
    torch.manual_seed(0)
    x = torch.arange(8 * 1 * 2 * 3, dtype=torch.float32).view(8, 1, 2, 3)
    y = x[:, 0].long()  # a target map that equals the image: must stay equal after flipping
    fx, fy = ood.train._random_hflip(x, y)
    assert torch.equal(fx[:, 0].long(), fy)
    flipped = [not torch.equal(fx[i], x[i]) for i in range(8)]
    assert 0 < sum(flipped) < 8  # some flipped, some not
    for i in range(8):
        assert torch.equal(fx[i], x[i].flip(-1) if flipped[i] else x[i])
    labels = torch.arange(8)  # image labels are left alone
    assert torch.equal(ood.train._random_hflip(x, labels)[1], labels)


def test_random_crop_cuts_each_image_and_its_target_at_one_random_place() -> None:
    torch.manual_seed(0)
    x = torch.arange(6 * 2 * 10 * 12, dtype=torch.float32).view(6, 2, 10, 12)
    y = x[:, 0].long()  # a target map that equals the image's first channel: must be cut at the same place
    cx, cy = ood.train._random_crop(x, y, 4)
    assert cx.shape == (6, 2, 4, 4) and cy.shape == (6, 4, 4) and torch.equal(cx[:, 0].long(), cy)
    places = set()
    for i in range(6):  # a contiguous window of image i, both channels at the same place
        top, left = divmod(int(cx[i, 0, 0, 0] - x[i, 0, 0, 0]), 12)
        assert torch.equal(cx[i], x[i, :, top:top + 4, left:left + 4])
        places.add((top, left))
    assert len(places) > 1  # one place per image, not per batch
    with pytest.raises(ValueError, match="crop 11 is larger than the 10x12 frames"):
        ood.train._random_crop(x, y, 11)


def test_segmenter_trains_on_crops_and_validates_on_whole_frames() -> None:
    torch.manual_seed(0)
    x = torch.rand(12, 3, 32, 48)
    y = (x[:, 0] > 0.5).long()  # a per-pixel rule a segmenter can learn from any crop
    model = ood.models.build("fcn", num_classes=2, in_channels=3)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append((m.training, tuple(args[0].shape[-2:]))))
    ood.train.train(model, TensorDataset(x, y), TensorDataset(x[:5], y[:5]), epochs=1, batch_size=4, lr=1e-3,
                    device="cpu", progress=False, crop=16)
    assert {s for t, s in seen if t} == {(16, 16)} and {s for t, s in seen if not t} == {(32, 48)}
    assert sum(not t for t, _ in seen) == 2  # validation: whole frames, batch_size (4) at a time, not 4x


class TwoNetTask(ood.train.Task):
    """A GAN-shaped task: two networks, two optimizers updated in turn, EMA of one of them."""

    def __init__(self):
        torch.manual_seed(0)
        self.networks = {"g": torch.nn.Linear(4, 4), "d": torch.nn.Linear(4, 1)}

    def optimizers(self):
        return {"g": torch.optim.Adam(self.networks["g"].parameters(), lr=1e-2),
                "d": torch.optim.SGD(self.networks["d"].parameters(), lr=1e-2, momentum=0.9)}

    def training_step(self, batch, step):
        (x,) = batch
        noise = torch.randn_like(x)  # global RNG: re-seeded per epoch, so resume stays identical
        d_loss = (self.networks["d"](self.networks["g"](x + noise).detach()) ** 2).mean()
        step.update(d_loss, "d")
        g_loss = ((self.networks["g"](x) - x) ** 2).mean() - self.networks["d"](self.networks["g"](x)).mean() * 0.01
        step.update(g_loss, "g")
        return {"d": d_loss.item(), "g": g_loss.item()}


def fit_two(checkpoint=None):
    task = TwoNetTask()
    data = TensorDataset(torch.randn(64, 4, generator=torch.Generator().manual_seed(3)))
    history = ood.train.fit(task, data, epochs=3, batch_size=16, seed=2, device="cpu", checkpoint=checkpoint,
                            progress=False, ema={"g": 0.9})
    return task, history


def test_several_optimizers_and_ema_resume_bit_identically(tmp_path, monkeypatch) -> None:
    reference, ref_history = fit_two()
    assert set(ref_history[0]) == {"epoch", "train_d", "train_g"}
    ema, live = reference.ema["g"], reference.networks["g"]
    assert not torch.equal(ema.weight, live.weight)  # an average, not a copy
    interrupt_after_epoch(monkeypatch, 2, lambda: fit_two(tmp_path / "two.ckpt"))
    resumed, history = fit_two(tmp_path / "two.ckpt")
    assert history == ref_history
    for name in ("g", "d"):
        for (k, p), q in zip(reference.networks[name].state_dict().items(), resumed.networks[name].state_dict().values()):
            assert torch.equal(p, q), (name, k)
    assert torch.equal(resumed.ema["g"].weight, reference.ema["g"].weight)


def test_ema_follows_only_its_own_networks_optimizer() -> None:
    """A discriminator step leaves the generator's average alone; a generator step moves it."""
    task = TwoNetTask()
    opts = task.optimizers()
    averages = {"g": ood.train.EMA(task.networks["g"], 0.5)}
    step = ood.train.Step(torch.device("cpu"), opts, {}, torch.amp.GradScaler("cuda", enabled=False), False, averages,
                          task.networks)
    x = torch.randn(8, 4)
    before = averages["g"].module.weight.clone()
    step.update((task.networks["d"](x) ** 2).mean(), "d")
    assert torch.equal(averages["g"].module.weight, before)
    step.update((task.networks["g"](x) ** 2).mean(), "g")
    torch.testing.assert_close(averages["g"].module.weight, 0.5 * before + 0.5 * task.networks["g"].weight.detach())


def test_ema_is_the_exponential_average_by_hand() -> None:
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema = ood.train.EMA(net, decay=0.5)
    with torch.no_grad():
        net.weight.fill_(3.0)
    ema.update(net)
    assert ema.module.weight.item() == pytest.approx(2.0)  # 0.5 * 1 + 0.5 * 3
