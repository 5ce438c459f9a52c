"""Classifier contract (forward = fc(features), features non-negative) and checkpoint round trips."""

from __future__ import annotations

import pytest
import torch

import ood.models
from ood.detectors import build


@pytest.mark.parametrize("arch,shape,feat_dim", [("cnn", (2, 1, 28, 28), 128), ("resnet18", (2, 3, 32, 32), 512),
                                                 ("resnet50", (2, 3, 64, 64), 2048)])
def test_classifier_contract(arch: str, shape: tuple[int, ...], feat_dim: int) -> None:
    torch.manual_seed(0)
    model = ood.models.build(arch, num_classes=6, in_channels=shape[1]).eval()
    x = torch.rand(shape)
    with torch.no_grad():
        z = model.features(x)
        assert z.shape == (2, feat_dim) and (z >= 0).all()  # after the last ReLU (ReAct relies on it)
        assert torch.allclose(model(x), model.fc(z), atol=1e-5)
        assert model(x).shape == (2, 6)
        # one pass gives both (Heatmap OOD, MoodCat): the same features, the same maps, deepest first
        z2, maps = model.features_and_maps(x)
        assert torch.equal(z2, z)
        assert all(torch.equal(a, b) for a, b in zip(maps, model.feature_maps(x)))
        sides = [m.shape[-1] for m in maps]
        assert sides == sorted(sides) and len(maps) == len(model.map_points)


def test_save_load_round_trip_rebuilds_the_architecture_from_the_file(tmp_path) -> None:
    torch.manual_seed(0)
    model = ood.models.build("cnn", num_classes=6).eval()
    path = tmp_path / "models" / "classifier.pt"
    ood.models.save(model, path, arch="cnn", config={"num_classes": 6}, classes=list("abcdef"))
    loaded = ood.models.load(path)
    assert not loaded.training
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
    assert torch.load(path, weights_only=True)["classes"] == list("abcdef")
    assert [p.name for p in path.parent.iterdir()] == ["classifier.pt"]  # no temporary left behind


def test_unknown_architecture_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown architecture .vgg.; known: cnn, deeplabv3, fcn, resnet18, resnet50"):
        ood.models.build("vgg", num_classes=2)


def test_loaded_model_works_with_every_detector(tmp_path) -> None:
    torch.manual_seed(0)
    model = ood.models.build("cnn", num_classes=3, feature_dim=16)
    ood.models.save(model, tmp_path / "m.pt", arch="cnn", config={"num_classes": 3, "feature_dim": 16})
    model = ood.models.load(tmp_path / "m.pt")
    x, y = torch.rand(40, 1, 28, 28), torch.arange(40) % 3
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    for name in ("msp", "maxlogit", "energy", "odin", "mahalanobis", "knn", "vim", "react"):
        params = {"k": 3} if name == "knn" else {}
        scores = build(name, model=model, **params).fit(loader).score(x[:5])
        assert scores.shape == (5,) and torch.isfinite(scores).all(), name


def test_same_weights_give_the_same_file_bytes(tmp_path) -> None:
    """DVC hashes outputs: a re-run that trains the same weights must not look like a change."""
    torch.manual_seed(0)
    model = ood.models.build("cnn", num_classes=2)
    for name in ("a.pt", "b.pt"):
        ood.models.save(model, tmp_path / name, arch="cnn", config={"num_classes": 2})
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


@pytest.mark.parametrize("arch,shape,classes", [("fcn", (2, 1, 32, 48), 7), ("deeplabv3", (1, 3, 64, 96), 19)])
def test_segmenter_contract(arch: str, shape: tuple[int, ...], classes: int) -> None:
    torch.manual_seed(0)
    model = ood.models.build(arch, num_classes=classes, in_channels=shape[1]).eval()
    x = torch.rand(shape)
    with torch.no_grad():
        logits, z = model(x), model.features(x)
        assert logits.shape == (shape[0], classes, *shape[2:])  # logits at the input resolution
        assert z.shape[0] == shape[0] and z.shape[2:] == shape[2:]
        assert torch.allclose(logits, model.fc(z), atol=1e-4)
