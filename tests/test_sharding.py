"""Sharded scoring (torch.distributed, two gloo processes on the CPU) writes the same scores as one
process, for a detector with per-sample randomness (DiffGuard with classifier guidance: random
cutouts), and seeded evaluation subsets keep each image's index in its full set."""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import ood.evaluation.image as E
import ood.models
from ood.detectors import DiffGuard
from ood.models.diffusion import Diffusion, class_conditional_unet, config_of, ddpm_alphas_cumprod

from test_evaluate import KeyEcho, bench, model

SUBSET = 5


def diffguard() -> DiffGuard:
    """A small DiffGuard (untrained UNet, classifier guidance so every score draws cutouts)."""
    clf = model()
    torch.manual_seed(1)
    unet = class_conditional_unet(3, 1, 28, (8, 16), attention=False).eval()
    det = DiffGuard(clf, guidance="classifier", steps=20, depth=0.15, cutouts=2, seed=3)
    det.diffusion = Diffusion(unet, ddpm_alphas_cumprod(), num_classes=3).eval()
    det.networks, det.configs, det.fitted = {"unet": unet}, {"unet": config_of(unet)}, True
    return det


def _worker(rank: int, world: int, rdzv: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rdzv}", rank=rank, world_size=world)
    try:
        det = diffguard()
        rows, costs = E.score_detector(det, bench(), batch_size=2, variants=det.scores, subset=SUBSET, seed=7)
        if rank == 0:
            Path(out).write_bytes(pickle.dumps((rows, costs)))
    finally:
        dist.destroy_process_group()


def test_two_process_scoring_equals_one_process(tmp_path: Path) -> None:
    det = diffguard()
    single, _ = E.score_detector(det, bench(), batch_size=3, variants=det.scores, subset=SUBSET, seed=7)
    out = tmp_path / "rows.pkl"
    mp.start_processes(_worker, args=(2, str(tmp_path / "rdzv"), str(out)), nprocs=2, start_method="spawn")
    merged, costs = pickle.loads(out.read_bytes())
    assert costs.loc[0, "processes"] == 2 and costs.loc[0, "images"] == len(single) // 4
    pd.testing.assert_frame_equal(merged.drop(columns="score"), single.drop(columns="score"))  # same rows, same order
    assert (merged["score"] - single["score"]).abs().max() < 1e-4  # same draws; float tolerance


def test_subset_is_seeded_per_set_and_keeps_full_set_indices() -> None:
    a = E.subset_indices(100, 10, 0, "near1")
    assert a == sorted(a) and len(set(a)) == 10 and a == E.subset_indices(100, 10, 0, "near1")
    assert a != E.subset_indices(100, 10, 0, "far1") and a != E.subset_indices(100, 10, 1, "near1")
    assert E.subset_indices(8, 10, 0, "x") == list(range(8)) and E.subset_indices(8, None, 0, "x") == list(range(8))
    rows, costs = E.score_detector(KeyEcho(model()), bench(), batch_size=2, subset=4, seed=0)
    near = rows[rows["set"] == "near1"]
    expected = E.subset_indices(9, 4, 0, "near1")
    assert near["index"].tolist() == expected and near["score"].tolist() == [200 + i for i in expected]
    assert costs.loc[0, "images"] == 4 * 4  # every set (val, id, near1, far1) capped at 4
