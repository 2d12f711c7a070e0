"""The verdict table of issue 33: each paper's official code beside tfmtl on the same split.

    .venv/bin/python -m bench.official.report     # bench/results/official_<paper>.json -> official.{json,md,png}

Reads every ``bench/results/official_<paper>.json`` that a paper's runner wrote (shape in
bench/official/README.md): per model the official and the tfmtl metric over the same seeds, the
orderings, the gaps larger than two seed spreads with the difference that explains each, and the
paper's ``verdict``. Writes one table per paper, a plot of official against tfmtl per model, and
the merged JSON. It reruns nothing.
"""

from __future__ import annotations

import argparse
import glob
import json
import os

from bench import _report
from bench.official import seed_gap

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")
PAPERS = ("m3oe", "mamex", "morec")  # the order of the table; others follow by name


def load(results: str = RESULTS) -> dict:
    """``{paper: its official_<paper>.json}`` in table order."""
    found = {}
    for path in sorted(glob.glob(os.path.join(results, "official_*.json"))):
        paper = os.path.basename(path)[len("official_"):-len(".json")]
        with open(path) as f:
            data = json.load(f)
        if "models" not in data:
            raise ValueError(f"{path}: no 'models' (not a per-paper official result)")
        found[paper] = data
    return dict(sorted(found.items(), key=lambda kv: (PAPERS.index(kv[0]) if kv[0] in PAPERS else len(PAPERS),
                                                      kv[0])))


def _cell(side: dict | None) -> str:
    if not side or side.get("mean") is None:
        return "-"
    return f"{side['mean']:.4f} +- {side.get('std') or 0:.4f}"


def rows(data: dict) -> list[tuple[str, dict | None, dict | None, dict | None]]:
    """``(label, official, tfmtl, gap)`` per model and pair of sides, in the file's order.

    A side named ``official...`` is the official code (``official`` itself, or a diagnostic variant such as
    ``official_warm_negatives``); any other side is a tfmtl setting (``tfmtl``, or named runs such as MoRec's
    ``morec_mf``). A label names the sides that are not the plain ``official`` / ``tfmtl``. The gap is the
    file's entry for that model (and setting, where the file names it with ``against``), its headline metric
    first.
    """
    out = []
    for name, sides in data["models"].items():
        official = [k for k in sides if k.startswith("official")]
        ours = [k for k in sides if not k.startswith("official")]
        for o in official or [None]:
            for t in ours or [None]:
                tags = [k for k in (o, t) if k not in (None, "official", "tfmtl")]
                label = name + (f" ({', '.join(tags)})" if tags else "")
                gap = None
                if o == "official":
                    gap = next((g for g in data.get("gaps", []) if g["model"] == name
                                and g.get("against", t) == t), None)
                out.append((label, sides.get(o) if o else None, sides.get(t) if t else None, gap))
    return out


def paired_models(data: dict) -> list[tuple[str, dict, dict]]:
    """The model rows both implementations ran: ``(label, official, tfmtl)``."""
    return [(label, official, ours) for label, official, ours, _ in rows(data)
            if (official or {}).get("mean") is not None and (ours or {}).get("mean") is not None]


def markdown(papers: dict, png: str) -> str:
    lines = ["# The seeds' official code on our data (issue 33)", "",
             "Each paper's official repository at a named commit, run on exactly the train/validation/test "
             "split of the tfmtl benchmark, beside tfmtl's number for the same model (mean +- std over the "
             "seeds; the per-paper pages give every model, the hyper-parameters and the commands).", ""]
    for paper, data in papers.items():
        metric = next((side.get("metric") for sides in data["models"].values() for side in sides.values()
                       if isinstance(side, dict) and side.get("metric")), "metric")
        lines += [f"## {paper}", "",
                  f"Official: {data['official_repo']} @ `{data['official_commit']}`; seeds {data['seeds']}; "
                  f"{metric}. Details: [official_{paper}.md](official_{paper}.md).", "",
                  "| model | official | tfmtl | official - tfmtl | > two seed spreads |", "|---|---|---|---|---|"]
        for label, official, ours, gap in rows(data):
            both = _cell(official) != "-" and _cell(ours) != "-"
            difference = f"{official['mean'] - ours['mean']:+.4f}" if both else ""
            exceeds = "" if not both else ("yes" if (gap or seed_gap(official, ours))["exceeds"] else "no")
            lines.append(f"| {label} | {_cell(official)} | {_cell(ours)} | {difference} | {exceeds} |")
        lines += [""] + [f"- Ordering, {who}: {' > '.join(order)}"
                         for who, order in data.get("ordering", {}).items() if isinstance(order, list)]
        for gap in data.get("gaps", []):
            if gap.get("exceeds", True):
                against = ", ".join(str(gap[k]) for k in ("against", "metric") if k in gap)
                lines.append(f"- Gap on {gap['model']}{f' ({against})' if against else ''} "
                             f"({gap['official_minus_tfmtl']:+.4f}, two seed spreads {gap['two_seed_spreads']:.4f}): "
                             f"{gap.get('explained_by') or 'not explained yet.'}")
        verdict = data.get("verdict")
        lines += ["", f"**Verdict:** {verdict}" if verdict else "**Verdict:** not written yet.", ""]
    lines += [f"![official against tfmtl per model]({os.path.basename(png)})", ""]
    return "\n".join(lines)


def plot(papers: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = {paper: paired_models(data) for paper, data in papers.items() if paired_models(data)}
    figure, axes = plt.subplots(1, max(len(shown), 1), figsize=(4.5 * max(len(shown), 1), 3.8), squeeze=False)
    for axis, (paper, models) in zip(axes[0], shown.items()):
        x = range(len(models))
        for offset, (side, colour) in enumerate((("official", "tab:orange"), ("tfmtl", "tab:blue"))):
            values = [m[1 + offset]["mean"] for m in models]
            errors = [m[1 + offset].get("std") or 0 for m in models]
            axis.errorbar([i + (offset - 0.5) * 0.2 for i in x], values, yerr=errors, fmt="o", color=colour,
                          label=side, capsize=3)
        axis.set_xticks(list(x), [m[0] for m in models], rotation=20, ha="right")
        axis.set_xlim(-0.6, len(models) - 0.4)  # a paper with one shared model keeps its two points together
        axis.set_title(paper)
        axis.legend()
    figure.tight_layout()
    _report.save_figure(figure, path)
    plt.close(figure)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=RESULTS, help="folder of the official_<paper>.json files")
    parser.add_argument("--out", default=os.path.join(RESULTS, "official"))
    args = parser.parse_args(argv)
    papers = load(args.results)
    if not papers:
        raise SystemExit(f"no official_<paper>.json in {args.results}")
    _report.save_report(args.out, {"papers": papers}, markdown(papers, args.out + ".png"),
                        lambda png: plot(papers, png))


if __name__ == "__main__":
    main()
