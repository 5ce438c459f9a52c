"""Estimate each stage's GPU hours for the cifar10 / cifar100 paper profiles from counted FLOPs.

    .venv/bin/python benchmarks/gpu_hours.py cifar10              # 20 TFLOP/s sustained (an assumption)
    .venv/bin/python benchmarks/gpu_hours.py cifar100 --tflops 150  # H100-class

No GPU is needed and none has measured these: the forward FLOPs of one image through each network
are counted on the CPU (``torch.utils.flop_counter``) with the profile's architectures and widths,
then multiplied by the images and passes each stage makes (a training step = 3 forward passes:
forward + backward). The hours assume ``--tflops`` of *sustained* mixed-precision throughput,
which small 32-px networks reach only as a fraction of a card's peak: calibrate it with one
measured stage on your card (``reports/<benchmark>/*_costs.csv`` and the training reports give
seconds) and the rest follow. Data loading, the bootstrap and the report are not counted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ood.profile  # noqa: E402
from ood.detectors.diffguard import DiffGuard  # noqa: E402
from ood.models import build  # noqa: E402
from ood.models.decoders import HeatmapDecoder  # noqa: E402
from ood.models.generators import ConditionalGenerator, MaskEncoder, PairDiscriminator, UNetDiscriminator  # noqa: E402

#: Images per split as the profiles load them (official releases; ood.data.openood, val 10 % of train).
SIZES = {"cifar10": {"classes": 10, "train": 45_000, "val": 5_000, "test": 10_000},
         "cifar100": {"classes": 100, "train": 45_000, "val": 5_000, "test": 10_000}}
OOD_SETS = {"cifar100": 10_000, "cifar10": 10_000, "tiny-imagenet": 10_000, "mnist": 10_000, "svhn": 26_032,
            "dtd": 5_640, "places365": 36_500}
#: google/ddpm-cifar10-32's UNet (its config on the hub: 35.7 M parameters).
DDPM_CIFAR10 = {"sample_size": 32, "block_out_channels": (128, 256, 256, 256), "layers_per_block": 2,
                "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                "up_block_types": ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D")}


def profile_params(name: str) -> dict:
    default = ROOT / (ood.profile.STASH if ood.profile.active(ROOT) != "default" else "params.yaml")
    text = ood.profile.apply_overlay(default.read_text(), ood.profile.overlay(ROOT, name), name)
    return yaml.safe_load(text)


def forward_flops(net: torch.nn.Module, *inputs) -> float:
    """FLOPs of one forward pass of a batch of one image."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net.eval()(*inputs)
    return float(counter.get_total_flops())


def stage_flops(P: dict) -> dict[str, float]:
    bench = P["benchmark"]["name"]
    n = SIZES[bench]
    k = n["classes"]
    ood_sets = [s for s in OOD_SETS if s != bench]
    evaluated = n["val"] + n["test"] + sum(min(OOD_SETS[s], P["benchmark"]["far_size"]) for s in ood_sets)
    x, y = torch.rand(1, 3, 32, 32), torch.zeros(1, dtype=torch.long)

    clf = build(P["classifier"]["arch"], num_classes=k, in_channels=3, image_size=32)
    f_clf = forward_flops(clf, x)
    H = P["heatmap"]["train"]
    dec = HeatmapDecoder(feature_dim=clf.fc.in_features, num_classes=k, out_channels=3, image_size=32,
                         width=H["width"], code=H["code"])
    f_dec = forward_flops(dec, torch.rand(1, clf.fc.in_features), y)
    M = P["moodcat"]["train"]
    enc = MaskEncoder(3, 32, M["ndf"], M["nz"])
    gen = ConditionalGenerator(k, 3, 32, M["g_ch"], M["nz"], M["shared_dim"])
    disc = UNetDiscriminator(k, 3, 32, M["d_ch"], unet=M["discriminator"] == "unet")
    pair = PairDiscriminator(k, 3, 32, M["pair_ch"])
    f_enc, f_gen = forward_flops(enc, x), forward_flops(gen, torch.rand(1, M["nz"]), y)
    f_d, f_pair = forward_flops(disc, x, y), forward_flops(pair, x, x, y)
    from diffusers import UNet2DModel
    unet = UNet2DModel(**DDPM_CIFAR10)
    f_unet = forward_flops(unet, x, torch.tensor([500]))
    G = P["diffguard"]["score"]
    dg = object.__new__(DiffGuard)  # only its pass count: no model needed
    dg.hparams = G
    dg.diffusion = type("D", (), {"conditional": False, "steps": 1000})()
    passes = dg.network_evaluations()
    dg_images = evaluated if G.get("subset") is None else min(evaluated, G["subset"] * (2 + len(ood_sets)))

    C, trained = P["classifier"], n["train"]
    aux = H["outliers"] + H["pasted"]
    return {
        "classifier": C["epochs"] * (3 * trained + n["val"]) * f_clf,
        # one feature pass over train (fits) and the evaluated sets; ODIN/GradNorm-style baselines
        # add a backward and a second forward there (~4 passes)
        "posthoc": trained * f_clf + 4 * evaluated * f_clf,
        "heatmap_train": (trained + aux) * f_clf + H["epochs"] * (trained + aux) * 3 * f_dec,
        "heatmap": evaluated * (f_clf + f_dec),
        # GAN step: E+G forward/backward, D on real and fake (D step) and on fake again (G step)
        "moodcat_train": M["epochs"] * trained * (3 * (f_enc + f_gen) + 9 * f_d)
        + M["pair_epochs"] * trained * (f_enc + 2 * f_gen + 6 * f_pair),
        "moodcat": evaluated * P["moodcat"]["score"]["k"] * (2 * f_clf + f_enc + f_gen + f_pair),
        "diffusion": 0.0 if P["diffguard"]["train"]["pretrained"] else float("nan"),
        # classifier-guidance passes backpropagate through the classifier only (3 forward passes)
        "diffguard": dg_images * (passes["diffusion"] * f_unet + 3 * passes["classifier"] * f_clf),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", choices=sorted(SIZES))
    parser.add_argument("--tflops", type=float, default=20.0, help="sustained TFLOP/s of one GPU (default 20)")
    args = parser.parse_args()
    P = profile_params(args.profile)
    rows = stage_flops(P)
    print(f"profile {args.profile}: estimated from counted FLOPs at {args.tflops:g} TFLOP/s sustained (one GPU)")
    print(f"{'stage':16s} {'PFLOP':>10s} {'GPU hours':>10s}")
    for stage, flops in rows.items():
        print(f"{stage:16s} {flops / 1e15:10.1f} {flops / (args.tflops * 1e12) / 3600:10.2f}")
    total = sum(v for v in rows.values() if v == v)
    print(f"{'total':16s} {total / 1e15:10.1f} {total / (args.tflops * 1e12) / 3600:10.2f}")


if __name__ == "__main__":
    main()
