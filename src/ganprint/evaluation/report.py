"""Writing a robustness grid: results.csv, results.json, plots and one self-contained HTML report.

    <output_dir>/results.csv        one row per (model, attack level); columns as evaluation.grid
    <output_dir>/results.json       {"meta": ..., "rows": [...]} (NaN written as null)
    <output_dir>/bit_accuracy.png   bit accuracy vs strength, one panel per attack, one curve per model
    <output_dir>/detection_rate.png the same for the detection rate at the chosen false-positive rate
    <output_dir>/report.html        everything above plus example images per attack level, embedded
                                    (base64): the file can be mailed or archived on its own
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import torch
from PIL import Image

from ..errors import GanprintError
from ..io import atomic_path, atomic_write_json, atomic_write_text
from .grid import COLUMNS, GridResult

FILES = ("results.csv", "results.json", "bit_accuracy.png", "detection_rate.png", "report.html")
TARGET_ACCURACY = 0.95  # the robustness target of issue 6, drawn on the plots


def _clean(value):
    """JSON/CSV-safe: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def check_output_dir(output_dir: str | os.PathLike, overwrite: bool, files=FILES) -> Path:
    """Refuse (before any work) a path that is a file, or report files already there without overwrite."""
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise GanprintError(f"{out}: output path exists and is not a folder")
    existing = [name for name in files if (out / name).exists()]
    if existing and not overwrite:
        raise GanprintError(f"{out / existing[0]} already exists; choose another --output_dir or pass --overwrite")
    return out


def write_report(result: GridResult, output_dir: str | os.PathLike, overwrite: bool = False,
                 title: str = "ganprint robustness report") -> dict[str, Path]:  # fmt: skip
    """Write all report files; refuses to replace existing ones unless `overwrite`."""
    out = check_output_dir(output_dir, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in FILES}

    rows = [{k: _clean(r.get(k)) for k in COLUMNS} for r in result.rows]
    with atomic_path(paths["results.csv"]) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    atomic_write_json(paths["results.json"], {"meta": result.meta, "rows": rows})
    plots = {
        "bit_accuracy.png": plot_metric(result, "bit_accuracy", "bit accuracy"),
        "detection_rate.png": plot_metric(result, "detection_rate", f"detected at FPR {result.meta.get('false_positive_rate', 0):g}"),
    }  # fmt: skip
    for name, png in plots.items():
        with atomic_path(paths[name]) as tmp:
            tmp.write_bytes(png)
    atomic_write_text(paths["report.html"], render_html(result, plots, title))
    return paths


# ------------------------------------------------------------------------------------------ plots
def _panels(result: GridResult) -> list[tuple[str, object]]:
    """(attack name, attack) in grid order, each once."""
    seen: dict[str, object] = {}
    for level in result.levels:
        seen.setdefault(level.attack.name, level.attack)
    return list(seen.items())


def plot_metric(result: GridResult, column: str, ylabel: str) -> bytes:
    """PNG bytes: one panel per attack, x = attack level, one curve per model; the unattacked value is
    drawn at the attack's identity level where it has one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(result) or [("none", None)]
    cols = min(4, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 2.9 * nrows), squeeze=False)
    models = result.models
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (name, attack) in zip(axes.flat, panels):
        for m, model in enumerate(models):
            points = [(r["level"], r[column]) for r in result.rows if r["model"] == model and r["attack"] == name]
            base = result.row(model, "none")
            if attack is not None and attack.identity is not None and base is not None and points:
                points.append((attack.identity, base[column]))
            points = sorted((x, y) for x, y in points if y is not None)
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", markersize=3.5, label=model, color=colors[m % len(colors)])
        if column == "bit_accuracy":
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
            ax.axhline(TARGET_ACCURACY, color="green", lw=0.8, ls="--")
            for m, model in enumerate(models):  # the accuracy each model's detection needs at the FPR
                base = result.row(model, "none")  # (its own null: calibrated models differ at one length)
                if base is not None and base.get("threshold_bits") is not None:
                    needed = base["threshold_bits"] / base["fingerprint_length"]
                    ax.axhline(needed, color=colors[m % len(colors)], lw=0.8, ls=(0, (2, 2)), alpha=0.8)
            ax.set_ylim(0.4, 1.02)
        else:
            ax.set_ylim(-0.02, 1.02)
        if attack is not None:
            ax.set_xlabel(f"{name}: {attack.parameter}", fontsize=8)
            if attack.stronger == "down":
                ax.invert_xaxis()  # stronger to the right in every panel
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95 if handles else 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------- html
def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def example_strip(images: torch.Tensor | list[torch.Tensor], min_side: int = 64) -> bytes:
    """PNG of uint8 images (k,3,H,W), or a list of (3,H,W) of different sizes, side by side, top-aligned;
    enlarged with nearest neighbours so that the smallest is >= min_side tall."""
    scale = max(1, math.ceil(min_side / min(image.shape[-2] for image in images)))
    gap = 2
    width = sum(image.shape[-1] * scale + gap for image in images) - gap
    strip = Image.new("RGB", (width, max(image.shape[-2] for image in images) * scale), (255, 255, 255))
    x = 0
    for image in images:
        h, w = image.shape[-2:]
        tile = Image.fromarray(image.permute(1, 2, 0).numpy()).resize((w * scale, h * scale), Image.NEAREST)
        strip.paste(tile, (x, 0))
        x += w * scale + gap
    buffer = io.BytesIO()
    strip.save(buffer, format="PNG")
    return buffer.getvalue()


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _acc_class(acc, needed: float | None) -> str:
    if acc is None:
        return ""
    if acc >= TARGET_ACCURACY:
        return "good"
    if needed is not None and acc >= needed:
        return "fair"
    return "bad"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}h3{font-size:1em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.good{background:#d8f3dc}.fair{background:#fff3bf}.bad{background:#ffd6d6}
img.plot{max-width:100%}.strip{image-rendering:pixelated}.note{color:#555;font-size:.9em}code{background:#f4f4f4;padding:0 3px}
"""


def render_html(result: GridResult, plots: dict[str, bytes], title: str) -> str:
    meta = result.meta
    fpr = meta.get("false_positive_rate")
    models = result.models
    labels = list(dict.fromkeys(r["label"] for r in result.rows))
    needed = {m: (r["threshold_bits"] / r["fingerprint_length"]) for m in models if (r := result.row(m, "none"))}
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} &middot; ganprint "
        f"{html.escape(str(meta.get('ganprint_version', '')))} &middot; false-positive rate {fpr:g} &middot; seed "
        f"{meta.get('seed')} &middot; {meta.get('seconds', 0):.0f} s</p>",
        "<h2>Models</h2><table><tr><th class='l'>model</th><th class='l'>kind</th><th>bits</th><th>images</th>"
        "<th>bits needed</th><th>clean bit acc.</th><th>PSNR vs clean</th><th>SSIM vs clean</th><th class='l'>details</th></tr>",
    ]
    for subject in meta.get("subjects", []):
        name = subject["name"]
        base = result.row(name, "none") or {}
        details = ", ".join(f"{k}={v}" for k, v in subject.items() if k not in ("name", "kind", "fingerprint_length", "images"))
        parts.append(
            f"<tr><td class='l'>{html.escape(name)}</td><td class='l'>{html.escape(subject['kind'])}</td>"
            f"<td>{subject['fingerprint_length']}</td><td>{base.get('images', '')}</td><td>{base.get('threshold_bits', '')}</td>"
            f"<td class='{_acc_class(base.get('bit_accuracy'), needed.get(name))}'>{_fmt(base.get('bit_accuracy'))}</td>"
            f"<td>{_fmt(base.get('psnr_clean'), 1)}</td><td>{_fmt(base.get('ssim_clean'))}</td>"
            f"<td class='l'>{html.escape(details)}</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        "<h2>How to read this report</h2><ul class='note'>"
        "<li><b>bit accuracy</b>: share of fingerprint bits read correctly (0.5 = chance). "
        f"Green: &ge; {TARGET_ACCURACY}; yellow: enough for detection (the <b>bits needed</b> of the table above, the dotted "
        "line in the model's colour on the plots); red: below.</li>"
        f"<li><b>detected</b>: share of images whose binomial p-value is &le; {fpr:g}, i.e. that a user would call "
        "fingerprinted at that false-positive rate. <b>clean FP</b>: the same for clean images under the same attack; "
        "it should stay near 0 (and clean bit accuracy near 0.5).</li>"
        "<li><b>PSNR/SSIM attack</b>: how much the attack changed the fingerprinted images (lower = harsher attack; "
        "100 dB = unchanged; &ndash; when it changed their size). For model attacks: the attacked model's images "
        "against the original's.</li>"
        "<li><b>PSNR/SSIM vs clean</b>: how visible the fingerprint is (fingerprinted vs clean image, codecs only).</li>"
        "</ul>"
    )
    parts.append("<h2>Bit accuracy and detection rate</h2>")
    parts.append("<table><tr><th class='l'>attack level</th>" + "".join(
        f"<th colspan='5'>{html.escape(m)}</th>" for m in models) + "</tr>")  # fmt: skip
    parts.append("<tr><th></th>" + "<th>bit acc.</th><th>detected</th><th>clean FP</th><th>PSNR attack</th>"
                 "<th>SSIM attack</th>" * len(models) + "</tr>")  # fmt: skip
    for label in labels:
        cells = [f"<td class='l'>{html.escape(label)}</td>"]
        for m in models:
            r = result.row(m, label)
            if r is None:
                cells.append("<td colspan='5'>&ndash;</td>")
                continue
            cells.append(
                f"<td class='{_acc_class(r['bit_accuracy'], needed.get(m))}'>{_fmt(r['bit_accuracy'])}</td>"
                f"<td>{_fmt(r['detection_rate'])}</td><td>{_fmt(r['clean_detection_rate'])}</td>"
                f"<td>{_fmt(r['psnr_attack'], 1)}</td><td>{_fmt(r['ssim_attack'])}</td>"
            )
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table>")
    if meta.get("skipped"):
        parts.append("<p class='note'>Not applicable: " + "; ".join(
            html.escape(f"{s['model']} {s['label']} ({s['reason']})") for s in meta["skipped"]) + "</p>")  # fmt: skip
    for name, png in plots.items():
        parts.append(f"<h3>{html.escape(name)}</h3><img class='plot' alt='{html.escape(name)}' src='{_png_data_uri(png)}'>")
    parts.append("<h2>Examples</h2><p class='note'>The first images of each model after each attack level "
                 "(as the decoder saw them, 8-bit; images at their native size as thumbnails "
                 "96 px tall).</p>")  # fmt: skip
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(label.split(":")[0], []).append(label)
    for attack, group in groups.items():
        parts.append(f"<h3>{html.escape(attack)}</h3><table><tr><th class='l'>level</th>"
                     + "".join(f"<th class='l'>{html.escape(m)}</th>" for m in models) + "</tr>")  # fmt: skip
        for label in group:
            cells = []
            for m in models:
                images = result.examples.get((m, label))
                r = result.row(m, label)
                if images is None or r is None or len(images) == 0:
                    cells.append("<td>&ndash;</td>")
                    continue
                cells.append(
                    f"<td class='l'><img class='strip' alt='{html.escape(m)} {html.escape(label)}' "
                    f"src='{_png_data_uri(example_strip(images))}'><br>bit acc. {_fmt(r['bit_accuracy'])}</td>"
                )
            parts.append(f"<tr><td class='l'>{html.escape(label)}</td>{''.join(cells)}</tr>")
        parts.append("</table>")
    parts.append("<h2>Run</h2><pre class='note'>" + html.escape(json.dumps(meta, indent=2, default=str)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
