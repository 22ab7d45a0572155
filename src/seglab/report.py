"""The HTML report of ``seglab compare`` and the demo: one page that opens offline.

Nothing on the page comes from outside the machine: the style is inline, the pictures are files
beside ``index.html`` named by relative paths, there is no script, font or analytics. Each
section (one :func:`seglab.compare.compare` run) shows a grid (rows: images; columns: the image,
the truth, each method's overlay), a table of metrics and times with the best of each column
marked, a picture of accuracy against time, and how each metric is computed.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import io

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 22px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: #c7cbd6; max-width: 70em; }
main { padding: 8px 32px 40px; }
section { background: #fff; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.08);
          padding: 16px 22px; margin: 22px 0; }
h2 { font-size: 19px; margin: 4px 0 10px; }
h3 { font-size: 15px; margin: 18px 0 8px; color: #3b4356; }
.grid { display: grid; gap: 12px; align-items: start;
        grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); }
figure { margin: 0; }
figure img { width: 100%; max-height: 340px; object-fit: contain; background: #fff;
             border-radius: 4px; border: 1px solid #dde1e8; display: block; }
figcaption { font-size: 12.5px; color: #4a5266; margin-top: 3px; line-height: 1.3; }
figcaption b { color: #1d2330; }
table { border-collapse: collapse; font-size: 13.5px; margin: 6px 0; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e4e7ec; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eef0f4; font-weight: 600; }
td.best { font-weight: 700; color: #0a6b2d; background: #e7f6ec; }
.plot img { max-width: 620px; width: 100%; }
dl { font-size: 13.5px; } dt { font-weight: 600; margin-top: 6px; } dd { margin: 2px 0 0 16px; }
.note { color: #5a6275; font-size: 13px; }
"""

_SHOWN = (
    "adjusted_rand_index",
    "boundary_f1",
    "variation_of_information",
    "pixel_accuracy",
    "mean_iou",
    "mask_ap50",
    "f1_50",
)
_NAMES = {
    "adjusted_rand_index": "adjusted Rand",
    "boundary_f1": "boundary F",
    "variation_of_information": "VI (bits)",
    "pixel_accuracy": "pixel acc.",
    "mean_iou": "mean IoU",
    "mask_ap50": "mask AP50",
    "f1_50": "F1@0.5",
    "seconds": "seconds",
    "n_segments": "segments",
}


#: Columns where less is better (the best of each column is marked in the table).
LOWER_IS_BETTER = {"variation_of_information", "seconds", "n_segments"}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and bool(np.isfinite(value))


def _mean_rows(results: list[dict], methods: Sequence[str]) -> list[dict]:
    """Per method: mean seconds, segments and metrics over the images."""
    rows = []
    for m in methods:
        mine = [r for r in results if r["method"] == m]
        row: dict = {"method": m, "seconds": float(np.mean([r["seconds"] for r in mine]))}
        row["n_segments"] = float(np.mean([r["n_segments"] for r in mine]))
        for key in _SHOWN:
            values = [r["metrics"][key] for r in mine if _finite(r["metrics"].get(key))]
            if values:
                row[key] = float(np.mean(values))
        rows.append(row)
    return rows


def _table(rows: list[dict], columns: list[str]) -> str:
    best = {}
    for c in columns:
        values = [r[c] for r in rows if c in r]
        if len(values) > 1 and c != "n_segments":  # more segments is neither better nor worse
            best[c] = min(values) if c in LOWER_IS_BETTER else max(values)
    head = "".join(f"<th>{html.escape(_NAMES.get(c, c))}</th>" for c in columns)
    body = []
    for r in rows:
        cells = [f"<td>{html.escape(r['method'])}</td>"]
        for c in columns:
            if c not in r:
                cells.append("<td>–</td>")
                continue
            v = r[c]
            text = f"{v:.0f}" if c == "n_segments" else f"{v:.3f}"
            mark = ' class="best"' if best.get(c) == v else ""
            cells.append(f"<td{mark}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr><th>method</th>{head}</tr>{''.join(body)}</table>"


def _plot(path: Path, rows: list[dict]) -> bool:
    """Accuracy (mean IoU where the method predicts classes, else adjusted Rand) against time."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    points = [
        (r["method"], r["seconds"], r.get("adjusted_rand_index"), r.get("mean_iou")) for r in rows
    ]
    if not any(p[2] is not None for p in points):
        return False
    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    for name, sec, ari, miou in points:
        if ari is not None:
            ax.scatter(sec, ari, s=46, color="#2b6cb0", zorder=3)
            ax.annotate(name, (sec, ari), textcoords="offset points", xytext=(6, 4), fontsize=9)
        if miou is not None:
            ax.scatter(sec, miou, s=46, marker="s", color="#d97706", zorder=3)
    ax.scatter([], [], color="#2b6cb0", label="adjusted Rand")
    if any(p[3] is not None for p in points):
        ax.scatter([], [], marker="s", color="#d97706", label="mean IoU")
    ax.set_xscale("log")
    ax.margins(x=0.3, y=0.12)
    ax.set_xlabel("seconds per image (log scale)")
    ax.set_ylabel("score (higher is better)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    ax.set_title("accuracy (images with truth) against time (all images), means", fontsize=10)
    fig.tight_layout()
    io.save_figure(path, fig, dpi=110)
    plt.close(fig)
    return True


def _grid(data: dict, root: str) -> str:
    """Per image: the image, its truth and each method's overlay, wrapping to the page width."""
    results, methods = data["results"], data["methods"]
    truth = data.get("truth", {})
    e = html.escape
    parts = []
    for stem in data["images"]:
        parts.append(f'<h3>{e(stem)}</h3><div class="grid">')
        parts.append(_figure(f"{root}{stem}/image.png", f"<b>{e(stem)}</b>", stem))
        if truth.get(stem):
            parts.append(_figure(f"{root}{stem}/truth.png", "<b>truth</b>", f"{stem} truth"))
        for m in methods:
            r = next(r for r in results if r["image"] == stem and r["method"] == m)
            main = r["metrics"].get("mean_iou", r["metrics"].get("adjusted_rand_index"))
            label = "mIoU" if "mean_iou" in r["metrics"] else "ARI"
            score = "" if main is None else f" · {label} {main:.3f}"
            caption = f"<b>{e(m)}</b><br>{r['seconds']:.2f} s · {r['n_segments']} segments{score}"
            parts.append(_figure(f"{root}{stem}/{m}/overlay.png", caption, f"{stem} {m}"))
        parts.append("</div>")
    return "".join(parts)


def _figure(src: str, caption: str, alt: str) -> str:
    src = "/".join(html.escape(p, quote=True) for p in src.split("/"))
    return (
        f'<figure><a href="{src}"><img src="{src}" alt="{html.escape(alt, quote=True)}" '
        f'loading="lazy"></a><figcaption>{caption}</figcaption></figure>'
    )


def write_report(
    out: str | os.PathLike,
    sections: list[dict],
    title: str | None = None,
    intro: str = "",
) -> Path:
    """Write ``out/index.html`` for one or more compare runs (``sections``, each the dict that
    :func:`seglab.compare.compare` returns, with an optional ``root``: its folder relative to
    ``out``, and ``intro``: a paragraph of HTML); returns the page's path."""
    out = Path(out)
    title = title or sections[0].get("title", "seglab compare")
    body = []
    for i, data in enumerate(sections):
        root = data.get("root", "")
        rows = _mean_rows(data["results"], data["methods"])
        columns = ["seconds", "n_segments"] + [c for c in _SHOWN if any(c in r for r in rows)]
        plot = f"accuracy_vs_time_{i}.png" if len(sections) > 1 else "accuracy_vs_time.png"
        has_plot = _plot(out / plot, rows)
        n = len(data["images"])
        e = html.escape
        body.append(f"<section><h2>{e(data.get('title', title))}</h2>{data.get('intro', '')}")
        body.append(_grid(data, root))
        body.append(f"<h3>Scores and times (mean over {n} image{'s' * (n > 1)})</h3>")
        body.append(_table(rows, columns))
        body.append(
            '<p class="note">Best of each column in green. Times are the segmentation '
            "alone (reading, writing and pictures excluded) on this machine.</p>"
        )
        if has_plot:
            body.append(f'<div class="plot"><img src="{plot}" alt="accuracy against time"></div>')
        body.append("</section>")
    notes = sections[0].get("metrics", {})
    if notes:
        items = "".join(
            f"<dt>{html.escape(_NAMES.get(k, k))}</dt><dd>{html.escape(v)}</dd>"
            for k, v in notes.items()
        )
        body.append(
            f"<section><h2>How the numbers are computed</h2><dl>{items}</dl>"
            "<p class='note'>Truth pixels of value 255 are ignored everywhere. Per-image "
            "numbers are in results.json.</p></section>"
        )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{intro}</p></header><main>"
        + "".join(body)
        + "</main></body></html>\n"
    )
    return io.atomic_write_bytes(out / "index.html", page.encode("utf-8"))
