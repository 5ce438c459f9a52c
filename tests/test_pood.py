"""pytorch-ood's post-hoc detectors by name (ood.detectors.pood).

Reference: the same pytorch-ood class built the way its documentation shows, on the *whole*
classifier (images in, the network run by pytorch-ood), fitted on a loader of images. The adapter
builds it on views of the classifier (identity encoder on features, ``fc`` as head, features as
1x1 maps) and feeds it features: both must give the same scores.
"""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_ood.detector as P
import torch
from sklearn.metrics import roc_auc_score

import ood.detectors as D
from ood.pipeline import params as OP
from ood.detectors.posthoc import vim_default_dim
from test_detectors import task  # noqa: F401  (the trained tiny classifier, ID/OOD blobs and loader)


def _maps(model):
    return dict(backbone=lambda x: model.features(x)[:, :, None, None], head=lambda t: model.fc(t.flatten(1)))


#: name -> pytorch-ood detector on the whole model, with the adapter's defaults
REFERENCE = {
    "gen": lambda m: P.GEN(m, gamma=0.1),
    "pood-entropy": lambda m: P.Entropy(m),
    "klmatching": lambda m: P.KLMatching(m),
    "pood-msp": lambda m: P.MaxSoftmax(m),
    "pood-maxlogit": lambda m: P.MaxLogit(m),
    "pood-energy": lambda m: P.EnergyBased(m),
    "pood-mahalanobis": lambda m: P.Mahalanobis(m.features),
    "rmd": lambda m: P.RMD(m.features),
    "pood-knn": lambda m: P.KNN(m.features, k=50),
    "gmm": lambda m: P.GMM(m.features),
    "pood-vim": lambda m: P.ViM(m.features, d=vim_default_dim(m.fc.in_features), w=m.fc.weight, b=m.fc.bias),
    "dice": lambda m: P.DICE(m.features, w=m.fc.weight, b=m.fc.bias, p=0.9),
    "nci": lambda m: P.NCI(m.features, m.fc),
    "fdbd": lambda m: P.fDBD(m.features, m.fc),
    "pnml": lambda m: P.PNML(m.features, m.fc),
    "she": lambda m: P.SHE(m.features, m.fc),
    "nnguide": lambda m: P.NNGuide(m.features, m.fc, k=10),
    "ash": lambda m: P.ASH(**_maps(m)),
    "scale": lambda m: P.SCALE(**_maps(m)),
    "pood-react": lambda m: P.ReAct(**_maps(m)),
    "vra": lambda m: P.VRA(**_maps(m)),
    "lts": lambda m: P.LTS(m.features, m.fc),
}


def test_every_adapted_detector_has_a_reference_and_our_collisions_are_prefixed():
    assert set(REFERENCE) == set(D.ADAPTED) and len(D.ADAPTED) >= 10
    assert not set(D.ADAPTED) & set(D.OWN) and not set(D.ADAPTED) & set(D.DENSE_REGISTRY)
    assert list(D.POSTHOC) == [*D.OWN, *D.ADAPTED]


@pytest.mark.parametrize("name", list(REFERENCE))
def test_adapter_scores_equal_pytorch_ood_on_the_whole_model(task, name):
    model = task["model"]
    det = D.build(name, model=model).fit(task["loader"])
    ref = REFERENCE[name](model)
    if det.requires_fit:
        ref.fit(task["loader"])
    with torch.no_grad():
        expected = ref.predict(task["x"]).double()
        got = det.score(task["x"]).double()
        from_features = det.score_features(model.features(task["x"])).double()
    assert got.shape == (len(task["x"]),) and torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(from_features, got, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(REFERENCE))
def test_higher_scores_mean_more_ood(task, name):
    """pytorch-ood's outlier scores keep this project's sign: OOD blobs score higher than ID ones."""
    s = D.build(name, model=task["model"]).fit(task["loader"]).score(task["x"])
    assert roc_auc_score(task["is_ood"], s.double().numpy()) > 0.55  # a flipped sign gives < 0.5 (DICE: 0.58, the weakest)


@pytest.mark.parametrize("ours, theirs", [("msp", "pood-msp"), ("maxlogit", "pood-maxlogit"), ("energy", "pood-energy")])
def test_our_baselines_equal_the_adapted_ones(task, ours, theirs):
    a = D.build(ours, model=task["model"]).fit(task["loader"]).score(task["x"])
    b = D.build(theirs, model=task["model"]).fit(task["loader"]).score(task["x"])
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_parameters_are_validated_naming_the_key_and_range(task):
    with pytest.raises(ValueError, match=r"ash: parameter 'percentile' must be a float in \(0.0, 1.0\), got 1.5"):
        D.build("ash", model=task["model"], percentile=1.5)
    with pytest.raises(ValueError, match="one of 'ash-s', 'ash-b', 'ash-p'"):
        D.build("ash", model=task["model"], variant="ash-x")
    with pytest.raises(TypeError, match="pood-knn: unknown parameter"):
        D.build("pood-knn", model=task["model"], K=3)
    det = D.build("pood-knn", model=task["model"], k=3)
    assert det.hparams == {"k": 3}


def test_params_yaml_accepts_adapted_names_and_rejects_bad_values():
    values = OP.load()
    values["detectors"]["names"] = [n for n in values["detectors"]["names"] if n != "ash"] + ["pood-knn", "ash"]
    values["detectors"]["ash"]["percentile"] = 0.9
    assert OP.validate(values) == []
    values["detectors"]["ash"]["percentile"] = 90
    assert OP.validate(values) == ["detectors.ash.percentile: must be a float in (0.0, 1.0), got 90.0"]


def test_a_fit_that_pytorch_ood_refuses_names_the_detector_and_the_way_out():
    """SHE keeps the ID features the classifier classifies correctly, per class: an untrained
    classifier that never predicts a class leaves it nothing to keep."""
    from test_detectors import ID_CENTRES, TinyClassifier, make_images

    torch.manual_seed(0)
    x, y = make_images(300, ID_CENTRES, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="she: pytorch-ood could not fit .*remove 'she' from detectors.names"):
        D.build("she", model=TinyClassifier(num_classes=6).eval()).fit([(x, y)])
