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

    # Interrupt the run right after the checkpoint of epoch 2 is written.
    real_save = ood.train.atomic_torch_save
    def save_then_stop(obj, path):
        real_save(obj, path)
        if len(obj["history"]) == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(ood.train, "atomic_torch_save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        fit(checkpoint=ckpt)
    assert ckpt.exists()
    monkeypatch.setattr(ood.train, "atomic_torch_save", real_save)

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
