"""Every number in reports/report.html, checked against the file it comes from.

Each table of the report names its source in a ``data-source`` attribute (``<benchmark>/summary.csv``,
``<benchmark>/paired.csv``, ``costs``...). :func:`problems` parses every table with BeautifulSoup
(colspans expanded) and compares each cell with reports/metrics.json (values), the summary tables
(intervals), the paired tables (differences, intervals, Holm marks), the cost tables and data.json,
at the precision shown. It returns a list of mismatches (empty: the report is faithful).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import yaml
from bs4 import BeautifulSoup

from ood.report.seeds import load_spread, with_seed_spread

from ood.report.tables import METRIC_LABELS

NUMBER = re.compile(r"[+-]?\d+(?:,\d{3})*(?:\.\d+)?")
LABEL_METRIC = {label: metric for metric, label in METRIC_LABELS.items()}


def tables(html: str) -> list[tuple[dict[str, str], list[tuple[str, ...]], list[tuple[list[str], list[str]]]]]:
    """``(attributes, column labels, [(index labels, cells)])`` of every table, column labels as
    tuples of the non-empty header levels above each data column."""
    out = []
    for table in BeautifulSoup(html, "html.parser").find_all("table"):
        rows = [([c.get_text(strip=True) for c in tr.find_all("th")], [c.get_text(strip=True) for c in tr.find_all("td")])
                for tr in (table.tbody or table).find_all("tr")]
        rows = [r for r in rows if r[1]]
        for i in range(1, len(rows)):  # a sparsified (rowspan) index level repeats the row above's
            above, (labels, cells) = rows[i - 1][0], rows[i]
            rows[i] = (above[: len(above) - len(labels)] + labels, cells)
        n = len(rows[0][1]) if rows else 0
        levels = []
        for tr in table.thead.find_all("tr") if table.thead else []:
            labels = [t for c in tr.find_all(["th", "td"]) for t in [c.get_text(strip=True)] * int(c.get("colspan", 1))]
            if any(labels[-n:]):
                levels.append(labels[-n:])
        columns = [tuple(level[j] for level in levels if level[j]) for j in range(n)]
        out.append((dict(table.attrs), columns, rows))
    return out


def numbers(cell: str) -> list[float]:
    return [float(x.replace(",", "")) for x in NUMBER.findall(cell)]


def close(shown: float, value: float, digits: int = 1) -> bool:
    """``shown`` is ``value`` at ``digits`` decimals (half a unit of the last place, plus rounding noise)."""
    return abs(shown - value) <= 0.5 * 10**-digits + 1e-6


def problems(root: Path) -> list[str]:
    reports = root / "reports"
    html = (reports / "report.html").read_text(encoding="utf-8")
    metrics = json.loads((reports / "metrics.json").read_text())
    ablations = json.loads((reports / "ablations.json").read_text())
    bad: list[str] = []
    costs = pd.concat([pd.read_csv(f).assign(benchmark=f.parent.name) for f in sorted(reports.glob("*/*_costs.csv"))])
    seen: dict[str, set[str]] = {}
    for attrs, columns, rows in tables(html):
        source = attrs.get("data-source")
        if source is None:
            bad.append(f"a table has no data-source: columns {columns[:3]}")
            continue
        bench, _, file = source.partition("/")
        for index, cells in rows:
            for column, cell in zip(columns, cells):
                if cell in ("–", ""):
                    continue
                where = f"{source} [{' / '.join(index)}] {column}: {cell!r}"
                got = numbers(cell)
                if file.startswith("subsets.csv#"):  # every detector on the images of a subset detector
                    subset = pd.read_csv(reports / bench / "subsets.csv")
                    subset = subset[subset["subset"] == file.partition("#")[2]].set_index(["detector", "set", "metric"])
                    detector = index[-1].removesuffix(" †")
                    set_name, metric = (column[0], "auroc") if "glance" in attrs.get("class", []) else (column[0], LABEL_METRIC[column[1]])
                    r = subset.loc[(detector, set_name, metric)]
                    if len(got) not in (1, 3) or not all(close(g, 100 * v) for g, v in zip(got, (r["value"], r["lo"], r["hi"]))):
                        bad.append(f"{where} != {100 * r['value']:.2f} ({100 * r['lo']:.2f}–{100 * r['hi']:.2f})")
                    if r["member"]:
                        seen.setdefault(bench, set()).add(detector)
                elif file in ("summary.csv", "ablations.csv"):
                    detector = index[-1].removesuffix(" †")
                    set_name, metric = (column[0], "auroc") if "glance" in attrs.get("class", []) else (column[0], LABEL_METRIC[column[1]])
                    values = (ablations if file == "ablations.csv" else metrics)[bench]["detectors"][detector][set_name]
                    table = pd.read_csv(reports / bench / file).set_index(["detector", "set", "metric"])
                    ref = [values[metric]] + ([table.loc[(detector, set_name, metric), "lo"], table.loc[(detector, set_name, metric), "hi"]]
                                              if len(got) == 3 else [])
                    seen.setdefault(bench, set()).add(detector)
                    if len(got) not in (1, 3) or not all(close(g, 100 * r) for g, r in zip(got, ref)):
                        bad.append(f"{where} != {[round(100 * r, 3) for r in ref]}")
                elif file == "paired.csv":
                    level = float(re.search(r"ci_level: ([\d.]+)", (root / "params.yaml").read_text()).group(1))
                    spread = load_spread(root, yaml.safe_load((root / "params.yaml").read_text()))
                    paired = with_seed_spread(pd.read_csv(reports / bench / file), spread, bench, level)
                    ref_detector = column[1].removeprefix("vs ").removeprefix("best: ")
                    row = paired[(paired["a"] == index[-1]) & (paired["b"] == ref_detector) & (paired["set"] == column[0])
                                 & (paired["metric"] == attrs["data-metric"])]
                    if len(row) != 1:
                        bad.append(f"{where}: no such comparison in {source}")
                        continue
                    r = row.iloc[0]
                    alpha = 1 - level
                    has_sd = not pd.isna(r["seed_std"])  # the committed seed spread of this comparison
                    found = r["p_holm"] <= alpha and (not has_sd or r["p_seed_holm"] <= alpha)
                    ref = (r["diff"], r["lo"], r["hi"], *([r["seed_std"]] if has_sd else []))
                    if len(got) != len(ref) or not all(close(g, 100 * v) for g, v in zip(got, ref)) or ("✓" in cell) != found:
                        bad.append(f"{where} != {r['diff'] * 100:+.2f} [{r['lo'] * 100:+.2f}, {r['hi'] * 100:+.2f}] "
                                   f"sd {r['seed_std'] * 100:.2f} p_holm {r['p_holm']:.3g} p_seed_holm {r['p_seed_holm']:.3g}")
                elif source == "costs":
                    mine = costs[(costs["benchmark"] == index[0]) & (costs["detector"] == index[1].removesuffix(" †"))]
                    col = {"scoring s": "score_s", "× one forward": "cost_vs_forward", "training s": "fit_s"}.get(column[0])
                    if len(mine) != 1:
                        bad.append(f"{where}: no cost row")
                        continue
                    ref = [float(mine[col].iloc[0])] if col else got
                    if col == "fit_s":  # a method's training time is in its card (its training record's)
                        det = index[1].removesuffix(" †")
                        card = reports / index[0] / f"{det}_card.json"
                        ref += [json.loads(card.read_text())["fit_s"]] if card.exists() else []
                    if not any(close(got[0], r, 2 if col == "cost_vs_forward" else 1) for r in ref):
                        bad.append(f"{where} != {ref}")
                elif file == "data.json":
                    closeness = json.loads((reports / bench / file).read_text())["auxiliary"]["closeness"]
                    if not close(got[0], closeness[index[-1]][column[0]], 3):
                        bad.append(f"{where} != {closeness[index[-1]][column[0]]}")
                elif file == "published":  # the paper-vs-ours table of a paper profile
                    from ood.report.published import paper_vs_ours

                    ref = paper_vs_ours(metrics, bench, bench)
                    if column[0] in ("published", "ours", "difference") and \
                            not any(close(got[0], 100 * v, 2) for v in ref[column[0]]):
                        bad.append(f"{where}: not a {column[0]} value of paper_vs_ours")
                elif source != "provenance":
                    bad.append(f"{where}: unknown source")
    for bench, entry in metrics.items():
        missing = set(entry["detectors"]) - seen.get(bench, set())
        if missing:
            bad.append(f"{bench}: detectors of metrics.json missing from the report's tables: {sorted(missing)}")
    return bad


if __name__ == "__main__":  # python tests/report_numbers.py [root]: check a study's report by hand
    import sys

    found = problems(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
    print("\n".join(found) or "every number in reports/report.html matches its source")
    sys.exit(1 if found else 0)
