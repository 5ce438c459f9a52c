"""Run one pipeline notebook: ``python -m ood.pipeline.notebook notebooks/classifier.ipynb``, or a
method's generic stage: ``python -m ood.pipeline.notebook notebooks/train.ipynb --method moodcat``.

What every dvc stage does, in one place: check params.yaml (stop before any work if it is wrong),
execute the notebook with papermill, its ``params`` parameter set to params.yaml's values (and
``method`` to the method it runs), write the executed notebook to ``reports/notebooks/<stage>.ipynb``
and an HTML copy without code cells beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from . import params as P

TEMPLATES = Path(__file__).parent.parent / "report" / "templates"  # "offline": HTML that needs no network
#: set by the tests: a file to which every executed notebook appends the project modules it imported
IMPORTS_ENV = "OOD_RECORD_IMPORTS"


def setup(params: dict[str, Any] | None, section: str = "benchmark", method: str | None = None
          ) -> tuple[dict[str, Any], Path, Path]:
    """What every stage notebook does first: ``P, ROOT, OUT = setup(params)`` (``params``: the
    notebook's papermill parameter; ``None`` when run by hand reads params.yaml).

    ``P``: the validated parameters (with ``method``'s sections, whose benchmark section then
    replaces ``section``); ``ROOT``: the project folder; ``OUT``: ``reports/<name of the
    section's benchmark>/``, created. Figures render inline.
    """
    import torch

    if method is not None:
        from ..detectors import trained

        section = trained(method).method.benchmark
    values = P.from_notebook(params, methods=[method] if method else [])
    root = P.project_root()
    out = root / "reports" / values[section]["name"]
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            shell.run_line_magic("matplotlib", "inline")
    except ImportError:  # pragma: no cover - notebooks always have IPython
        pass
    return values, root, out


def run(notebook: str | Path, out_dir: str | Path = "reports/notebooks", html: str | Path | None = None,
        method: str | None = None, output: str | None = None) -> Path:
    """Execute ``notebook`` (for ``method``) into ``<out_dir>/<output or the notebook's name>.ipynb``
    and export it to HTML; returns the HTML file."""
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
    values = P.load(root / P.PARAMS_FILE, methods=[method] if method else [])
    notebook = Path(notebook)
    out_dir = root / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)  # papermill does not create it
    executed = out_dir / f"{output or notebook.stem}.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    if os.environ.get(IMPORTS_ENV):  # the tests' record of what a stage really runs
        nb.cells.append(nbformat.v4.new_code_cell(
            "import json as _j, sys as _s\n"
            f"with open({os.environ[IMPORTS_ENV]!r}, 'a') as _f:\n"
            f"    _f.write(_j.dumps([{(output or notebook.stem)!r}, sorted(m for m in _s.modules if m.split('.')[0] == 'ood')]) + '\\n')"))
    parameters = {"params": values, **({"method": method} if method else {})}
    pm.execute_notebook(nb, str(executed), parameters=parameters, kernel_name="python3",
                        cwd=str(root), log_output=True, progress_bar=False)
    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    # the page title: the notebook's metadata.title where set, else the stage's name
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4),
                                          resources={"metadata": {"name": f"oodstudy: {executed.stem}"}})
    html_path = root / html if html else executed.with_suffix(".html")
    tmp = html_path.with_suffix(".html.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(html_path)
    return html_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", help="notebook to execute, e.g. notebooks/classifier.ipynb")
    parser.add_argument("--method", help="the trained method a generic notebook (train, score) runs, e.g. moodcat")
    parser.add_argument("--output", help="name of the executed notebook (default: the notebook's), e.g. moodcat_train")
    parser.add_argument("--html", help="where to write the HTML export (default: beside the executed notebook)")
    args = parser.parse_args(argv)
    try:
        html = run(args.notebook, html=args.html, method=args.method, output=args.output)
    except P.ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
