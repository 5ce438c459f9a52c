"""Small HTML pieces for the report: figures embedded as base64 PNG and collapsible sections.

The report is one file that opens from disk or an e-mail attachment: every image is a ``data:``
URI and nothing is fetched. ``<details>`` needs no script, so sections collapse in any browser.
"""

from __future__ import annotations

import base64
import html
import io

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["details", "img_tag"]


def img_tag(fig: Figure, *, dpi: int = 72, alt: str = "") -> str:
    """``<img>`` holding ``fig`` as an embedded PNG; closes the figure (the report draws many)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" style="max-width: 100%;">'


def details(summary: str, body: str, *, open_: bool = False) -> str:
    """A collapsible section: ``summary`` (inline HTML) always shown, ``body`` (HTML) on a click."""
    return f"<details{' open' if open_ else ''}><summary>{summary}</summary>\n{body}\n</details>"
