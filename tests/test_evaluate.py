"""Image scoring: every split and set scored, ID validation rows marked, keys (set, index) passed
to detectors that draw random numbers, costs reported."""

from __future__ import annotations

import pandas as pd
import torch
from torch.utils.data import TensorDataset

import ood.evaluation.image as E
import ood.models
from ood.data.benchmark import Benchmark
from ood.detectors.base import Detector


def bench() -> Benchmark:
    g = torch.Generator().manual_seed(0)

    def ds(n: int, label: int) -> TensorDataset:
        return TensorDataset(torch.rand(n, 1, 28, 28, generator=g), torch.full((n,), label))

    train = TensorDataset(torch.rand(30, 1, 28, 28, generator=g), torch.arange(30) % 3)
    return Benchmark(name="toy", classes=["a", "b", "c"], train=train, val=ds(10, 0), test=ds(12, 1),
                     ood={"near1": ds(9, -1), "far1": ds(7, -1)}, groups={"near": ["near1"], "far": ["far1"]},
                     in_channels=1, image_size=(28, 28))


def model():
    torch.manual_seed(0)
    return ood.models.build("cnn", num_classes=3, width=8, feature_dim=16).eval()


def test_posthoc_scores_every_split_and_marks_validation_rows():
    scores, costs = E.score_posthoc(model(), bench(), ["msp", "knn", "odin"], {"knn": {"k": 3}}, batch_size=8)
    assert list(scores.columns) == ["benchmark", "detector", "set", "index", "score", "is_ood"]
    sizes = scores.groupby(["detector", "set"]).size().unstack()
    assert (sizes[["val", "id", "near1", "far1"]].to_numpy() == [10, 12, 9, 7]).all()
    assert not scores.loc[scores["set"].isin(["val", "id"]), "is_ood"].any()
    assert scores.loc[scores["set"].isin(["near1", "far1"]), "is_ood"].all()
    assert list(costs["detector"]) == ["msp", "knn", "odin"] and (costs["cost_vs_forward"] > 0).all()


class KeyEcho(Detector):
    """Scores each image by a number derived from its key alone."""

    name = "keyecho"
    random = True

    def _score(self, x, keys):
        return torch.tensor([{"val": 0, "id": 1, "near1": 2, "far1": 3}[s] * 100 + i for s, i in keys], dtype=torch.float32)


def test_score_detector_passes_set_and_index_keys_whatever_the_batch_size():
    a, costs = E.score_detector(KeyEcho(model()), bench(), batch_size=4)
    b, _ = E.score_detector(KeyEcho(model()), bench(), batch_size=64)
    pd.testing.assert_frame_equal(a, b)
    near = a[a["set"] == "near1"]
    assert near["score"].tolist() == [200 + i for i in range(9)] and near["index"].tolist() == list(range(9))
    assert costs.loc[0, "detector"] == "keyecho" and costs.loc[0, "cost_vs_forward"] > 0


def test_class_means_are_the_mean_image_of_each_predicted_class():
    torch.manual_seed(0)
    model = ood.models.build("cnn", num_classes=4, width=8, feature_dim=16).eval()
    x = torch.rand(70, 1, 28, 28)
    pred = model(x).argmax(1)
    means = E.class_means(model, TensorDataset(x, torch.zeros(70)), 4, batch_size=16)  # batches cross classes
    assert means.shape == (4, 1, 28, 28)
    for c in range(4):
        want = x[pred == c].mean(0) if (pred == c).any() else torch.zeros(1, 28, 28)  # never predicted: zeros
        torch.testing.assert_close(means[c], want, atol=1e-6, rtol=0)
