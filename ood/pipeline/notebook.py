"""Run one pipeline notebook: ``python -m ood.pipeline.notebook notebooks/02_classifier.ipynb``.

What every dvc stage does, in one place: check params.yaml (stop before any work if it is wrong),
execute the notebook with papermill and params.yaml's values as parameters (``-f params.yaml``),
write the executed notebook to ``reports/notebooks/`` and an HTML copy without code cells beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from . import params as P

TEMPLATES = Path(__file__).parent / "report" / "templates"  # "offline": HTML that needs no network


def setup(namespace: dict[str, Any], section: str = "benchmark") -> tuple[dict[str, Any], Path, Path]:
    """What every stage notebook does first: ``P, ROOT, OUT = setup(globals())``.

    ``P``: the validated parameters (papermill's injected top-level keys, the rest from the
    project's params.yaml when the notebook runs by hand); ``ROOT``: the project folder; ``OUT``:
    ``reports/<name of the params section's benchmark>/``, created. Figures render inline.
    """
    import torch

    params = P.from_notebook(**{k: namespace.get(k) for k in P.schema()})
    root = P.project_root()
    out = root / "reports" / params[section]["name"]
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            shell.run_line_magic("matplotlib", "inline")
    except ImportError:  # pragma: no cover - notebooks always have IPython
        pass
    return params, root, out


def run(notebook: str | Path, out_dir: str | Path = "reports/notebooks", html: str | Path | None = None) -> Path:
    # jsonschema (via nbformat) imports rfc3987_syntax when installed (jupyterlab's dependencies pull
    # it in), which compiles a grammar for 2 s; notebook validation never checks IRI formats, so
    # every stage skips it (3.6 -> 0.7 s of imports per stage).
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    # Progress bars inside the kernel reach the terminal line by line: update them rarely.
    os.environ.setdefault("TQDM_MININTERVAL", "10")
    root = P.project_root()
    values = P.load(root / P.PARAMS_FILE)
    notebook = Path(notebook)
    out_dir = root / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)  # papermill does not create it
    executed = out_dir / notebook.name
    pm.execute_notebook(str(notebook), str(executed), parameters=values, kernel_name="python3",
                        cwd=str(root), log_output=True, progress_bar=False)
    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    # the page title: the notebook's metadata.title where set, else the stage's name
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4),
                                          resources={"metadata": {"name": f"oodstudy: {notebook.stem}"}})
    html_path = root / html if html else executed.with_suffix(".html")
    tmp = html_path.with_suffix(".html.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(html_path)
    return html_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", help="notebook to execute, e.g. notebooks/01_data.ipynb")
    parser.add_argument("--html", help="where to write the HTML export (default: beside the executed notebook)")
    args = parser.parse_args(argv)
    try:
        html = run(args.notebook, html=args.html)
    except P.ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
