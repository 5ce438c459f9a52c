"""Heatmap OOD against hand computations: prototypes, the official loss, the global min-max
normalisation, the decoder's input and output, and the score; plus the combination rule of
``summarize`` (fitted on ID validation only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

import ood.detectors as D
from ood.detectors.heatmap import heatmap_loss, nearest_prototypes
from ood.models.decoders import HeatmapDecoder
from ood.pipeline.summarize import combine, fit_standardiser


def test_nearest_prototypes_by_brute_force():
    g = torch.Generator().manual_seed(0)
    z_ref, y_ref = torch.randn(50, 4, generator=g), torch.arange(50) % 3
    z_q, y_q = torch.randn(20, 4, generator=g), torch.arange(20) % 3
    got = nearest_prototypes(z_q, y_q, z_ref, y_ref, chunk=3)
    for i in range(20):
        same = [j for j in range(50) if y_ref[j] == y_q[i]]
        best = min(same, key=lambda j: float(((z_q[i] - z_ref[j]) ** 2).sum()))
        assert int(got[i]) == best
    # a class no reference is predicted as: the nearest reference of any class, with a warning
    y_q = torch.where(torch.arange(20) < 4, 5, y_q)
    with pytest.warns(UserWarning, match="no ID training image is predicted as class 5; 4 outlier"):
        got = nearest_prototypes(z_q, y_q, z_ref, y_ref)
    assert torch.equal(got[:4], torch.cdist(z_q[:4], z_ref).argmin(dim=1))
    assert int(got[4]) == min((j for j in range(50) if y_ref[j] == y_q[4]),
                              key=lambda j: float(((z_q[4] - z_ref[j]) ** 2).sum()))


def test_loss_is_the_official_weighted_squared_error():
    x = torch.tensor([[[[0.5, -1.0]]]])
    h = torch.tensor([[[[0.25, 0.0]]]])
    t = torch.tensor([[[[-0.5, 1.0]]]])
    # pixel 1: (1 + 5*0.5) * (0.5 + 0.25 + 0.5)^2 = 3.5 * 1.5625; pixel 2: (1 + 5) * (-1 - 1)^2 = 24
    assert heatmap_loss(h, x, t).item() == pytest.approx(3.5 * 1.5625 + 24.0)


def test_decoder_shapes_input_width_and_range():
    dec = HeatmapDecoder(feature_dim=16, num_classes=3, out_channels=1, image_size=28, width=32, code=10)
    assert dec.fc.in_features == 16 + 3  # features ⊕ one-hot of the predicted class
    h = dec(torch.rand(5, 16), torch.tensor([0, 1, 2, 0, 1]))
    assert h.shape == (5, 1, 28, 28) and h.abs().max() <= 1
    assert HeatmapDecoder(16, 3, 3, 32, 32)(torch.rand(2, 16), torch.tensor([0, 1])).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="multiple of 4"):
        HeatmapDecoder(16, 3, image_size=30)


class Tiny(torch.nn.Module):
    """A classifier with known features: the mean of each image row (so features are easy to check)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]))
            self.fc.bias.zero_()

    def features(self, x):
        return x[:, 0].mean(dim=2)  # [N, 4] for 4x4 images... resized below

    def forward(self, x):
        return self.fc(self.features(x))


def test_normalisation_prototypes_and_score_follow_the_official_code():
    g = torch.Generator().manual_seed(0)
    x_id = torch.rand(40, 1, 4, 4, generator=g)
    x_out = torch.rand(10, 1, 4, 4, generator=g)
    model = Tiny()
    det = D.build("heatmap", model=model, train={"epochs": 1, "batch_size": 8, "width": 8, "code": 4, "device": "cpu"})
    # image_size 4 is below the decoder's minimum: use 8x8 images that the features ignore beyond row 4
    x_id8 = torch.nn.functional.pad(x_id, (0, 4, 0, 4))
    x_out8 = torch.nn.functional.pad(x_out, (0, 4, 0, 4))
    model.features = lambda x: x[:, 0, :4, :4].mean(dim=2)  # type: ignore[method-assign]
    det.fit(TensorDataset(x_id8, torch.zeros(40, dtype=torch.long)), outliers=TensorDataset(x_out8, -torch.ones(10)),
            progress=False)
    z = x_id.mean(dim=3)[:, 0]
    # one global scalar min and max over every feature entry of ID train (not per dimension)
    assert det.state["z_min"].item() == pytest.approx(z.min().item())
    assert det.state["z_max"].item() == pytest.approx(z.max().item())
    # prototypes: nearest ID image of the same *predicted* class on raw features
    y_id, y_out = model.fc(z).argmax(1), model.fc(x_out.mean(dim=3)[:, 0]).argmax(1)
    expected = nearest_prototypes(x_out.mean(dim=3)[:, 0], y_out, z, y_id)
    assert torch.equal(det.state["prototypes"], expected)
    # score = mean over pixels of the max over channels of |h|
    h = det.heatmap(x_out8)
    torch.testing.assert_close(det.score(x_out8), h.abs().amax(1).flatten(1).mean(1))
    torch.testing.assert_close(det.score_map(x_out8), h.abs().amax(1))


def test_heatmap_separates_a_toy_ood_set():
    """ID: horizontal bands; auxiliary outliers and OOD test: vertical bands (other noise draws)."""
    import ood.models
    from ood.metrics import auroc

    def bands(n, vertical, seed):
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand(n, 1, 28, 28, generator=gen) * 0.2
        for i in range(n):
            sl = slice(4 + 8 * (i % 3), 10 + 8 * (i % 3))
            if vertical:
                x[i, :, :, sl] += 0.7
            else:
                x[i, :, sl, :] += 0.7
        return x.clamp(0, 1)

    torch.manual_seed(0)
    model = ood.models.build("cnn", num_classes=3, width=8, feature_dim=16)
    x, y = bands(300, False, 0), torch.arange(300) % 3
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(3):
        for i in range(0, 300, 50):
            loss = torch.nn.functional.cross_entropy(model(x[i:i + 50]), y[i:i + 50])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    outliers = bands(150, True, 5)
    det = D.build("heatmap", model=model, train={"epochs": 6, "batch_size": 50, "width": 16, "code": 16, "lr": 2e-3,
                                                  "device": "cpu"})
    det.fit(TensorDataset(x, y), outliers=TensorDataset(outliers, -torch.ones(150)), progress=False)
    s_id, s_ood = det.score(bands(60, False, 1)), det.score(bands(60, True, 2))
    assert auroc(s_id.numpy(), s_ood.numpy()) > 0.9


def _scores(rows):
    return pd.DataFrame(rows, columns=["benchmark", "detector", "set", "index", "score", "is_ood"])


def test_combination_standardises_on_id_validation_only():
    rows = []
    for det, scale in (("a", 1.0), ("b", 10.0)):
        rows += [("t", det, "val", i, scale * v, False) for i, v in enumerate([1.0, 2.0, 3.0])]
        rows += [("t", det, "id", i, scale * v, False) for i, v in enumerate([2.0, 2.5])]
        rows += [("t", det, "far", i, scale * v, True) for i, v in enumerate([5.0, 100.0])]
    scores = _scores(rows)
    assert fit_standardiser(scores, "a") == (2.0, 1.0)
    out = combine(scores, "a+b").set_index(["set", "index"])["score"]
    # z = (v - 2) / 1 for a and (10 v - 20) / 10 for b: equal, so their mean is (v - 2)
    assert out.loc[("far", 1)] == pytest.approx(98.0) and out.loc[("id", 0)] == pytest.approx(0.0)
    # changing OOD scores never changes the fitted constants
    scores.loc[scores["set"] == "far", "score"] *= 1000
    assert fit_standardiser(scores, "b") == (20.0, 10.0)
    assert combine(scores, "a+b", rule="zmax").set_index(["set", "index"])["score"].loc[("id", 1)] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no ID validation scores"):
        combine(scores[scores["set"] != "val"], "a+b")
    unpaired = scores.drop(scores.index[(scores["detector"] == "b") & (scores["set"] == "far")][:1])
    out = combine(unpaired, "a+b").set_index(["set", "index"])  # only the images both parts scored
    assert ("far", 0) not in out.index and ("far", 1) in out.index and len(out) == 6


def test_fw_layers_adds_the_matching_feature_maps_and_round_trips(tmp_path):
    """Official fw_layers option: classifier maps of the decoder blocks' shapes are added to them."""
    import ood.models

    torch.manual_seed(0)
    model = ood.models.build("cnn", num_classes=3, width=8, feature_dim=16).eval()  # maps 32@3, 16@7, 8@14
    x = torch.rand(40, 1, 28, 28)
    data, outliers = TensorDataset(x, torch.arange(40) % 3), TensorDataset(torch.rand(20, 1, 28, 28), -torch.ones(20))
    train = {"epochs": 1, "batch_size": 20, "width": 16, "code": 8, "device": "cpu", "fw_layers": 3}
    det = D.build("heatmap", model=model, train=train).fit(data, outliers=outliers, progress=False)
    assert det.configs["maps"] == [1, 2]  # 16@7 after block 1, 8@14 after block 2
    with torch.no_grad():
        maps = model.feature_maps(x[:4])
    lo, hi = det.state["z_min"], det.state["z_max"]
    assert lo <= min(float(maps[1].min()), float(maps[2].min())) and hi >= float(maps[2].max())
    without = det.networks["decoder"](det._condition(model.features(x[:4])), model(x[:4]).argmax(1))
    assert not torch.allclose(det.heatmap(x[:4]), without)  # the maps change the heatmap
    det.save(tmp_path / "h.pt")
    torch.testing.assert_close(D.load(tmp_path / "h.pt", model=model).score(x), det.score(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="fw_layers=3 needs a classifier feature map of shape"):
        D.build("heatmap", model=model, train={**train, "width": 64}).fit(data, outliers=outliers, progress=False)


def test_pasted_outliers_are_id_images_with_one_auxiliary_rectangle_and_their_clean_targets(monkeypatch):
    """heatmap.train.pasted (ours): composites differ from their source ID image inside one rectangle
    only, where they equal the auxiliary image; training regresses them towards the clean source."""
    import ood.detectors.heatmap as H
    import ood.models

    torch.manual_seed(0)
    model = ood.models.build("cnn", num_classes=3, width=8, feature_dim=16).eval()
    x_id, x_out = torch.rand(30, 1, 28, 28), torch.rand(12, 1, 28, 28)
    det = D.build("heatmap", model=model, seed=3, train={"epochs": 1, "batch_size": 20, "width": 16, "code": 8,
                                                          "device": "cpu", "pasted": 25})
    x_p, source = det._pasted(TensorDataset(x_id), TensorDataset(x_out), 25)
    assert x_p.shape == (25, 1, 28, 28) and source.shape == (25,)
    for img, src in zip(x_p, source):
        changed = torch.nonzero((img - x_id[src]).abs()[0] > 0)
        top, left = changed.min(0).values.tolist()
        bottom, right = (changed.max(0).values + 1).tolist()
        assert 4 <= bottom - top <= 20 and 4 <= right - left <= 20  # sides 1/7..5/7 of 28 (a changed box)
        outside = torch.ones(28, 28, dtype=torch.bool)
        outside[top:bottom, left:right] = False
        assert torch.equal(img[:, outside], x_id[src][:, outside])
        box = img[:, top:bottom, left:right]
        assert any(torch.equal(box, o[:, top:bottom, left:right]) for o in x_out)  # pasted from one outlier
    assert det._pasted(TensorDataset(x_id), TensorDataset(x_out), 0)[0].shape[0] == 0
    seen = {}
    monkeypatch.setattr(H, "fit", lambda task, data, *a, **k: seen.setdefault("data", data) and [])
    det.fit(TensorDataset(x_id, torch.arange(30) % 3), outliers=TensorDataset(x_out, -torch.ones(12)), progress=False)
    data = seen["data"]
    images, targets = (torch.stack([data[i][k] for i in range(len(data))]) for k in (2, 3))
    assert len(images) == 30 + 12 + 25
    torch.testing.assert_close(images[:30], x_id * 2 - 1)  # the ID images, then the outliers, read on access
    torch.testing.assert_close(images[30:42], x_out * 2 - 1)
    torch.testing.assert_close(targets[:30], images[:30])  # an ID image's target is itself
    torch.testing.assert_close(images[-25:], x_p * 2 - 1)  # same draws as above (seeded by the detector's seed)
    torch.testing.assert_close(targets[-25:], x_id[source] * 2 - 1)  # target: the clean source image
