"""torchvision's pre-trained weights: read from torch.hub's cache, a clear error offline, never a
download when a saved network is loaded. No test touches the network: the "download" is a file
placed in a temporary TORCH_HOME, and the real download is replaced by an unreachable host."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision

import ood.models
import ood.pipeline.params
from ood.models.pretrained import WeightsNotFound, cached_path

WEIGHTS = torchvision.models.ResNet50_Weights.IMAGENET1K_V1


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch.hub cache, and no network: a download fails like an unreachable host."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def unreachable(url, *args, **kwargs):
        raise urllib.error.URLError(f"network disabled in tests ({url})")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    return tmp_path / "hub"


@pytest.fixture
def cached_resnet50(hub):
    """A ResNet-50 state dict (random, seeded) where torch.hub keeps IMAGENET1K_V1."""
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None).eval()
    path = cached_path(WEIGHTS)
    path.parent.mkdir(parents=True)
    torch.save(net.state_dict(), path)
    return net


def test_offline_without_the_file_says_where_to_put_it(hub):
    with pytest.raises(WeightsNotFound) as err:
        ood.models.build("resnet50", pretrained=True)
    message = str(err.value)
    assert str(hub / "checkpoints" / "resnet50-0676ba61.pth") in message
    assert WEIGHTS.url in message and "TORCH_HOME" in message


def test_cached_weights_load_and_match_torchvision(cached_resnet50):
    model = ood.models.build("resnet50", pretrained=True).eval()
    x = torch.rand(2, 3, 64, 64)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():  # our wrapper on [0, 1] images = torchvision's network on normalised ones
        assert torch.allclose(model(x), cached_resnet50((x - mean) / std), atol=1e-5)


def test_a_saved_pretrained_network_loads_without_its_download(cached_resnet50, tmp_path):
    model = ood.models.build("resnet50", pretrained=True).eval()
    config = {"num_classes": 1000, "in_channels": 3, "image_size": 224}
    ood.models.save(model, tmp_path / "classifier.pt", arch="resnet50", config=config)
    cached_path(WEIGHTS).unlink()  # from now on a download would fail
    loaded = ood.models.load(tmp_path / "classifier.pt")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_deeplabv3_takes_the_imagenet_backbone(cached_resnet50):
    model = ood.models.build("deeplabv3", num_classes=19, pretrained=True)
    assert torch.equal(model.backbone["conv1"].weight, cached_resnet50.conv1.weight)
    assert torch.equal(model.backbone["layer4"][2].conv3.weight, cached_resnet50.layer4[2].conv3.weight)


def test_pretrained_rules_are_checked_before_any_work():
    with pytest.raises(ValueError, match="no pre-trained weights for 'cnn'"):
        ood.models.build("cnn", pretrained=True, num_classes=6)
    with pytest.raises(ValueError, match="predicts ImageNet's 1000 classes"):
        ood.models.build("resnet50", pretrained=True, num_classes=10)
    params = ood.pipeline.params.load()
    params["classifier"].update(pretrained=True)  # cnn has none
    params["segmenter"].update(epochs=0)          # no training and no weights
    errors = ood.pipeline.params.validate(params)
    assert errors == ["classifier.pretrained: no pre-trained weights for arch 'cnn' (architectures with some: resnet50, deeplabv3)",
                      "segmenter.epochs: 0 (no training) needs segmenter.pretrained: true"]
    params["classifier"].update(arch="resnet50", epochs=0)
    params["segmenter"].update(arch="deeplabv3", pretrained=True)
    assert ood.pipeline.params.validate(params) == []
