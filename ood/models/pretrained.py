"""torchvision's pre-trained weights, with an error that says what to do offline.

torchvision downloads weights into torch.hub's cache (``$TORCH_HOME/hub/checkpoints``, by default
``~/.cache/torch/hub/checkpoints``) on first use and checks the download against the hash in its
file name; later uses read the cached file. A machine without internet (a GPU node behind a
firewall) needs the file copied there by hand: :class:`WeightsNotFound` names the URL and the
exact path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

__all__ = ["WeightsNotFound", "cached_path", "state_dict"]


class WeightsNotFound(RuntimeError):
    """Pre-trained weights that are neither cached nor downloadable."""


def cached_path(weights: Any) -> Path:
    """Where torch.hub keeps (or would keep) a torchvision ``weights`` enum member's file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def state_dict(weights: Any) -> dict[str, torch.Tensor]:
    """The state dict of torchvision ``weights`` (e.g. ``ResNet50_Weights.IMAGENET1K_V1``): the cached
    file, else a hash-checked download into the cache."""
    path = cached_path(weights)
    try:
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a failed hash check a RuntimeError
        raise WeightsNotFound(
            f"could not load torchvision's {weights} weights ({type(err).__name__}: {err}). "
            f"On a machine with internet, download {weights.url} and copy it to {path} "
            "(or set TORCH_HOME to a folder whose hub/checkpoints/ holds it), then run again.") from err
