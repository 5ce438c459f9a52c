"""Estimate each stage's GPU hours for the paper profiles (cifar10, cifar100, imagenet, cityscapes)
from counted FLOPs.

    .venv/bin/python benchmarks/gpu_hours.py cifar10              # 20 TFLOP/s sustained (an assumption)
    .venv/bin/python benchmarks/gpu_hours.py cifar100 --tflops 150  # H100-class

No GPU is needed and none has measured these: the forward FLOPs of one image through each network
are counted (``torch.utils.flop_counter``, on the meta device: no memory, no arithmetic) with the
profile's architectures and widths, then multiplied by the images and passes each stage makes (a
training step = 3 forward passes: forward + backward). The hours assume ``--tflops`` of *sustained*
mixed-precision throughput, which small 32-px networks reach only as a fraction of a card's peak:
calibrate it with one measured stage on your card (``reports/<benchmark>/*_costs.csv`` and the
training reports give seconds) and the rest follow. Data loading, the bootstrap and the report are
not counted. ``cityscapes`` counts its dense stages; its image stages are the default's (minutes).
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

import ood.pipeline.profile  # noqa: E402
from ood.data.images import OPENOOD_V15  # noqa: E402
from ood.detectors.diffguard import DiffGuard  # noqa: E402
from ood.models import build  # noqa: E402
from ood.models.decoders import HeatmapDecoder  # noqa: E402
from ood.models.generators import ConditionalGenerator, MaskEncoder, PairDiscriminator, UNetDiscriminator  # noqa: E402

#: Images per split as the profiles load them (official releases; ood.data.openood, val 10 % of train;
#: ImageNet: 1,281,167 training images, test = the 50,000 validation images), and the image side.
SIZES = {"cifar10": {"classes": 10, "train": 45_000, "val": 5_000, "test": 10_000, "side": 32},
         "cifar100": {"classes": 100, "train": 45_000, "val": 5_000, "test": 10_000, "side": 32},
         "imagenet": {"classes": 1000, "train": 1_153_050, "val": 128_117, "test": 50_000, "side": 224}}
#: Images of each OOD set as released (NINCO: its OOD classes; OpenImage-O: the ViM list; SSB-hard: OpenOOD v1.5).
OOD_SETS = {"cifar100": 10_000, "cifar10": 10_000, "tiny-imagenet": 10_000, "mnist": 10_000, "svhn": 26_032,
            "dtd": 5_640, "places365": 36_500, "ssb-hard": 49_000, "ninco": 5_879, "inaturalist": 10_000,
            "openimage-o": 17_632}
#: Cityscapes (Cordts et al. 2016) frames and the labelled validation frames of the dense OOD sets.
DENSE_OOD = {"smiyc-roadanomaly21": 10, "smiyc-roadobstacle21": 30, "fishyscapes-lostandfound": 100}
#: facebook/DiT-XL-2-256 (its config on the hub: 675 M parameters) and its VAE (stabilityai/sd-vae-ft-ema).
DIT_XL_2 = {"num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4, "out_channels": 8, "num_layers": 28,
            "sample_size": 32, "patch_size": 2, "norm_type": "ada_norm_zero", "num_embeds_ada_norm": 1000,
            "activation_fn": "gelu-approximate", "norm_elementwise_affine": False}
SD_VAE = {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "latent_channels": 4,
          "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4}
#: google/ddpm-cifar10-32's UNet (its config on the hub: 35.7 M parameters).
DDPM_CIFAR10 = {"sample_size": 32, "block_out_channels": (128, 256, 256, 256), "layers_per_block": 2,
                "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                "up_block_types": ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D")}


def profile_params(name: str) -> dict:
    default = ROOT / (ood.pipeline.profile.STASH if ood.pipeline.profile.active(ROOT) != "default" else "params.yaml")
    text = ood.pipeline.profile.apply_overlay(default.read_text(), ood.pipeline.profile.overlay(ROOT, name), name)
    return yaml.safe_load(text)


def forward_flops(make, *inputs, fn=None) -> float:
    """FLOPs of one forward pass (``fn(net, *inputs)``, default ``net(*inputs)``) of a batch of one
    image through the network ``make()`` builds, on the meta device."""
    with torch.device("meta"):
        net = make().eval()
        inputs = [v.to("meta") for v in inputs]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        (fn or (lambda m, *a: m(*a)))(net, *inputs)
    return float(counter.get_total_flops())


def stage_flops(P: dict) -> dict[str, float]:
    bench = P["benchmark"]["name"]
    n = SIZES[bench]
    k, side = n["classes"], n["side"]
    ood_sets = [s for group in OPENOOD_V15[bench].values() for s in group]
    evaluated = n["val"] + n["test"] + sum(min(OOD_SETS[s], P["benchmark"]["far_size"]) for s in ood_sets)
    x, y = torch.rand(1, 3, side, side), torch.zeros(1, dtype=torch.long)

    C = P["classifier"]
    make_clf = lambda: build(C["arch"], num_classes=k, in_channels=3, image_size=side)  # noqa: E731
    f_clf = forward_flops(make_clf, x)
    with torch.device("meta"):
        feature_dim = make_clf().fc.in_features
    H = P["heatmap"]["train"]
    f_dec = forward_flops(lambda: HeatmapDecoder(feature_dim=feature_dim, num_classes=k, out_channels=3,
                                                 image_size=side, width=H["width"], code=H["code"]),
                          torch.rand(1, feature_dim), y)
    M = P["moodcat"]["train"]
    f_enc = forward_flops(lambda: MaskEncoder(3, side, M["ndf"], M["nz"]), x)
    f_gen = forward_flops(lambda: ConditionalGenerator(k, 3, side, M["g_ch"], M["nz"], M["shared_dim"]),
                          torch.rand(1, M["nz"]), y)
    f_d = forward_flops(lambda: UNetDiscriminator(k, 3, side, M["d_ch"], unet=M["discriminator"] == "unet"), x, y)
    f_pair = forward_flops(lambda: PairDiscriminator(k, 3, side, M["pair_ch"]), x, x, y)
    from diffusers import AutoencoderKL, Transformer2DModel, UNet2DModel
    G = P["diffguard"]["score"]
    latent = G["guidance"] == "cfg"  # the imagenet profile's DiT-XL-2 works on the VAE's latents (side / 8)
    if latent:
        f_eps = forward_flops(lambda: Transformer2DModel(**DIT_XL_2), torch.rand(1, 4, side // 8, side // 8),
                              torch.tensor([500]), y, fn=lambda m, z, t, c: m(z, timestep=t, class_labels=c))
        f_vae = forward_flops(lambda: AutoencoderKL(**SD_VAE), x, fn=lambda m, v: m.decode(m.encode(v).latent_dist.mode()))
    else:
        f_eps, f_vae = forward_flops(lambda: UNet2DModel(**DDPM_CIFAR10), x, torch.tensor([500])), 0.0
    dg = object.__new__(DiffGuard)  # only its pass count: no model needed
    dg.hparams = G
    dg.diffusion = type("D", (), {"conditional": latent, "steps": 1000})()
    passes = dg.network_evaluations()
    dg_images = evaluated if G.get("subset") is None else min(evaluated, G["subset"] * (2 + len(ood_sets)))

    trained = n["train"]
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
        # classifier-guidance passes backpropagate through the classifier only (3 forward passes);
        # a latent model adds one VAE encode and decode per image (counted as one round trip)
        "diffguard": dg_images * (passes["diffusion"] * f_eps + 3 * passes["classifier"] * f_clf + f_vae),
    }


def dense_stage_flops(P: dict) -> dict[str, float]:
    """The cityscapes profile's dense stages: the segmenter on crops (training) and whole frames."""
    from ood.models.flows import PatchFlow

    B, S, T = P["dense_benchmark"], P["segmenter"], P["nflowjs"]["train"]
    h, w = B["size"], 2 * B["size"]
    train, val, test = B["n_train"], B["n_val"], B["n_test"]
    evaluated = val + test + sum(DENSE_OOD.values())
    make_seg = lambda: build(S["arch"], num_classes=19, in_channels=3)  # noqa: E731
    f_full = forward_flops(make_seg, torch.rand(1, 3, h, w))
    crop = S["crop"] or h
    f_crop = forward_flops(make_seg, torch.rand(1, 3, crop, crop))
    j_crop = T["crop"] or h
    f_joint = forward_flops(make_seg, torch.rand(1, 3, j_crop, j_crop))
    patch = (T["patch_min"] + T["patch_max"]) // 2 // 2 ** T["levels"] * 2 ** T["levels"]  # a mean negative patch
    flow = PatchFlow(3, T["levels"], T["steps"], T["hidden"]).eval()  # on the CPU: nflows' layers initialise on data
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        flow.log_prob(torch.rand(1, 3, patch, patch))
    f_flow = float(counter.get_total_flops())
    images, flow_images = T["images"] or train, T["flow_images"] or train
    return {
        "segmenter": S["epochs"] * (3 * train * f_crop + val * f_full) + test * f_full,
        "dense_posthoc": evaluated * f_full,
        # flow pre-training; then per step: segmenter on the pasted crop (train), the flow's NLL of the
        # overwritten content and a sample (its inverse, as costly)
        "nflowjs_train": T["flow_epochs"] * flow_images * 3 * f_flow
        + T["epochs"] * (images * (3 * f_joint + 6 * f_flow) + val * f_full) + test * f_full,
        "nflowjs": evaluated * f_full,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", choices=[*sorted(SIZES), "cityscapes"])
    parser.add_argument("--tflops", type=float, default=20.0, help="sustained TFLOP/s of one GPU (default 20)")
    args = parser.parse_args()
    P = profile_params(args.profile)
    rows = dense_stage_flops(P) if args.profile == "cityscapes" else stage_flops(P)
    print(f"profile {args.profile}: estimated from counted FLOPs at {args.tflops:g} TFLOP/s sustained (one GPU)")
    print(f"{'stage':16s} {'PFLOP':>10s} {'GPU hours':>10s}")
    for stage, flops in rows.items():
        print(f"{stage:16s} {flops / 1e15:10.1f} {flops / (args.tflops * 1e12) / 3600:10.2f}")
    total = sum(v for v in rows.values() if v == v)
    print(f"{'total':16s} {total / 1e15:10.1f} {total / (args.tflops * 1e12) / 3600:10.2f}")


if __name__ == "__main__":
    main()
