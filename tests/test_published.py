"""The published-numbers table and the paper-vs-ours comparison (ood.report.published)."""

import math
import re
from collections import Counter

import pandas as pd
import pytest

from ood.report.published import COLUMNS, PROFILES, PUBLISHED, Published, paper_vs_ours, published_frame

#: Metric names of reports/metrics.json (image and dense).
METRICS = {"auroc", "fpr95", "aupr_in", "aupr_out", "ap"}


def _find(profile, detector, set_, metric):
    return [p for p in PUBLISHED if (p.profile, p.detector, p.set, p.metric) == (profile, detector, set_, metric)]


def test_every_value_is_a_fraction():
    assert PUBLISHED
    for p in PUBLISHED:
        assert isinstance(p.value, float) and 0.0 <= p.value <= 1.0, p


def test_every_row_names_its_source_with_a_url():
    for p in PUBLISHED:
        assert p.source.strip(), p
        assert re.search(r"https?://\S+", p.source), p


def test_rows_use_known_profiles_and_metric_names():
    for p in PUBLISHED:
        assert p.profile in PROFILES, p
        assert p.metric in METRICS, p
        assert p.detector == p.detector.lower() and p.set, p


def test_no_duplicates():
    keys = Counter((p.profile, p.detector, p.set, p.metric, p.source) for p in PUBLISHED)
    assert [k for k, n in keys.items() if n > 1] == []


def test_issue_numbers_present_exactly():
    """The issue quotes OpenOOD v1.5 CIFAR-10: MSP 88.03 / 90.73, KNN 90.64 / 92.96 (near / far AUROC)."""
    expected = {("msp", "near"): 0.8803, ("msp", "far"): 0.9073, ("knn", "near"): 0.9064, ("knn", "far"): 0.9296}
    for (detector, set_), value in expected.items():
        rows = _find("cifar10", detector, set_, "auroc")
        assert [r.value for r in rows] == [value]


def test_published_is_frozen():
    with pytest.raises(Exception):
        PUBLISHED[0].value = 0.5


def test_published_frame_of_a_profile():
    frame = published_frame("cifar10")
    assert list(frame.columns) == ["profile", "detector", "set", "metric", "value", "source"]
    assert set(frame["profile"]) == {"cifar10"}
    assert len(frame) == sum(p.profile == "cifar10" for p in PUBLISHED)
    empty = published_frame("cityscapes")
    assert list(empty.columns) == list(frame.columns)


def _metrics():
    return {
        "cifar10": {
            "model": {"accuracy": 0.95},
            "detectors": {
                "msp": {"near": {"auroc": 0.9, "fpr95": 0.5}, "far": {"auroc": 0.8}, "cifar100": {"auroc": 0.7}},
                "knn": {"near": {"auroc": 0.9064}},
                "moodcat": {"near": {"auroc": 0.99}},  # nothing published for it: ignored
            },
        },
        "other": {"detectors": {"msp": {"near": {"auroc": 0.1}}}},
    }


def test_paper_vs_ours_differences():
    frame = paper_vs_ours(_metrics(), "cifar10", "cifar10")
    assert list(frame.columns) == COLUMNS
    got = {(r.detector, r.set, r.metric): r for r in frame.itertuples()}
    # msp near/far and knn near; knn far (we lack it), fpr95 (not published) and cifar100 (no row) left out
    assert set(got) == {("msp", "near", "auroc"), ("msp", "far", "auroc"), ("knn", "near", "auroc")}
    assert got["msp", "near", "auroc"].published == 0.8803
    assert got["msp", "near", "auroc"].ours == 0.9
    assert math.isclose(got["msp", "near", "auroc"].difference, 0.9 - 0.8803)
    assert math.isclose(got["msp", "far", "auroc"].difference, 0.8 - 0.9073)
    assert math.isclose(got["knn", "near", "auroc"].difference, 0.0, abs_tol=1e-12)
    assert all("https://" in s for s in frame["source"])


def test_paper_vs_ours_empty_when_nothing_matches():
    frame = paper_vs_ours(_metrics(), "cityscapes", "cifar10")
    assert frame.empty and list(frame.columns) == COLUMNS
    frame = paper_vs_ours({"x": {"detectors": {"gmm": {"near": {"auroc": 0.5}}}}}, "cifar10", "x")
    assert frame.empty and list(frame.columns) == COLUMNS


def test_paper_vs_ours_uses_the_named_benchmark_only():
    frame = paper_vs_ours(_metrics(), "imagenet", "other")
    assert list(frame["detector"]) == ["msp"]
    assert frame["ours"].iloc[0] == 0.1
    with pytest.raises(KeyError, match="cifar10"):
        paper_vs_ours(_metrics(), "cifar10", "missing")


def test_unknown_profile_names_the_known_ones():
    for call in (lambda: published_frame("mnist"), lambda: paper_vs_ours(_metrics(), "mnist", "cifar10")):
        with pytest.raises(ValueError) as err:
            call()
        for name in PROFILES:
            assert name in str(err.value)


def test_row_is_a_dataclass_with_the_documented_fields():
    assert list(Published.__dataclass_fields__) == ["profile", "detector", "set", "metric", "value", "source"]
    assert isinstance(published_frame("imagenet"), pd.DataFrame)
