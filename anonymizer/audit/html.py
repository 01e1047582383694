"""The audit's contact sheet: one self-contained HTML page a person can scan.

Per output: its verdict and reasons, a thumbnail, and per face the original crop (when known) beside
the output crop with the identity distance; for a video, the best crop of each track with its scores, and
with an original each original track's faces beside the output at its worst frame. Every pair is labelled
original / output. Images are inlined (base64 PNG): the page shows original faces, so it is written
readable by its owner only.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np
from PIL import Image

from .report import AuditResult

_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
h1{font-size:1.3em} .file{background:#fff;border:1px solid #ddd;border-radius:6px;margin:0 0 1em;padding:.8em}
.fail{border-left:6px solid #c62828} .pass{border-left:6px solid #2e7d32}
.verdict{font-weight:bold;text-transform:uppercase} .fail .verdict{color:#c62828} .pass .verdict{color:#2e7d32}
.faces{display:flex;flex-wrap:wrap;gap:.8em;margin-top:.5em} .face{text-align:center;font-size:12px}
.face img,.thumb{border:1px solid #ccc;image-rendering:auto} .bad{color:#c62828;font-weight:bold}
ul{margin:.3em 0 .3em 1.2em;padding:0}
.pair{display:flex;gap:.3em} figure{margin:0} figcaption{font-size:11px;color:#555}
"""


def _png(rgb: np.ndarray, max_side: int) -> str:
    im = Image.fromarray(rgb)
    im.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _crop(rgb: np.ndarray, box: list[float], margin: float = 0.25) -> np.ndarray:
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    h, w = rgb.shape[:2]
    a, b = max(0, int(x1 - mx)), max(0, int(y1 - my))
    c, d = min(w, int(x2 + mx) + 1), min(h, int(y2 + my) + 1)
    return rgb[b:d, a:c] if c > a and d > b else rgb[:1, :1]


def _pair(original: np.ndarray | None, output: np.ndarray, name: str, row: dict) -> str:
    """An original face crop beside the output's, each labelled, with the identity distance."""
    cls = " class='bad'" if row["recognisable"] else ""
    cells = [(original, "original")] if original is not None and original.size else []
    cells.append((output, "output"))
    figs = "".join(f"<figure><img src='{_png(c, 96)}'><figcaption>{label}</figcaption></figure>" for c, label in cells)
    return (
        f"<div class='face'><div class='pair'>{figs}</div>{html.escape(name)}: <span{cls}>distance "
        f"{row['distance']:.3f}{' (recognisable)' if row['recognisable'] else ''}</span></div>"
    )


def render_html(results: list[AuditResult], *, title: str = "anonymizer audit") -> str:
    """The audit as one self-contained HTML page: per file its verdict, reasons and vault, the output's
    thumbnail and each face (beside its original where known) or track. It shows original faces."""
    e = html.escape
    failed = sum(r.verdict == "fail" for r in results)
    parts = [
        "<!doctype html><html><head><meta "
        f"charset='utf-8'><title>{e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1><p>{len(results)} file(s), <b>{failed}</b> failed. This page shows original faces: keep "
        "it private.</p>",
    ]
    for r in results:
        parts += _file_head(r)
        parts.append("<div class='faces'>")
        parts += _face_cells(r)
        parts += _track_cells(r)
        parts.append("</div>")
        if r.leaks:
            parts.append("<div>metadata: " + "; ".join(e(x.detail) for x in r.leaks) + "</div>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


def _file_head(r: AuditResult) -> list[str]:
    e = html.escape
    parts = [f"<div class='file {r.verdict}'><span class='verdict'>{r.verdict}</span> <code>{e(str(r.path))}</code>"]
    if r.original:
        parts.append(f" &middot; original: {e(r.original)}")
    if r.recognizer:
        parts.append(f" &middot; recognizer: {e(r.recognizer)}")
    if r.reasons:
        parts.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in r.reasons) + "</ul>")
    vault = r.vault or {}
    parts.append(
        f"<div>vault: {'present' if vault.get('present') else 'none'}"
        + ("" if vault.get("opens") is None else f", {'opens' if vault['opens'] else 'does NOT open'}")
        + "</div>"
    )
    return parts


def _face_cells(r: AuditResult) -> list[str]:
    """A photo's output thumbnail and faces: each beside its original when identity was measured."""
    if r.output_rgb is None:
        return []
    parts = [f"<div class='face'><img class='thumb' src='{_png(r.output_rgb, 220)}'><br>output</div>"]
    if r.identity:
        for i, row in enumerate(r.identity):
            orig = _crop(r.original_rgb, row["box"]) if r.original_rgb is not None else None
            parts.append(_pair(orig, _crop(r.output_rgb, row["box"]), f"face {i}", row))
        return parts
    for f in r.faces:
        cls = " class='bad'" if f["visible"] else ""
        parts.append(
            f"<div class='face'><img src='{_png(_crop(r.output_rgb, f['box']), 96)}'><br><span{cls}>detected, "
            f"score {f['score']:.2f}</span>" + _synthetic_text(f, r) + "</div>"
        )
    return parts


def _track_cells(r: AuditResult) -> list[str]:
    """A video's tracks: each original track beside the output at its worst frame, then each output track."""
    parts = []
    for row in r.identity if r.tracks is not None else ():
        orig, out = r.identity_crops.get(row["track"], (None, None))
        if out is not None:
            parts.append(_pair(orig, out, f"track {row['track']}, frame {row['frame']}", row))
    for row in r.tracks or ():
        cls = " class='bad'" if row["visible"] else ""
        crop = r.track_crops.get(row["track"])
        img = f"<img src='{_png(crop, 96)}'><br>" if crop is not None else ""
        synthetic = _synthetic_text(row, r)
        parts.append(
            f"<div class='face'>{img}track {row['track']}: frames {row['first_frame']}-{row['last_frame']}<br>"
            f"<span{cls}>score {row['score']:.2f}</span>{synthetic}</div>"
        )
    return parts


def _synthetic_text(row: dict[str, Any], r: AuditResult) -> str:
    """A face's or a track's synthetic score against the threshold, red when flagged."""
    if "synthetic" not in row:
        return ""
    notes = [f"max {row['synthetic_max']:.4f}"] if "synthetic_max" in row else []
    if r.synthetic_threshold is not None:
        notes.insert(0, f"threshold {r.synthetic_threshold:.4f}")  # 0.9988 must not read as 0.999
    at = f" ({', '.join(notes)})" if notes else ""
    flagged = row.get("synthetic_flagged", False)
    cls = " class='bad'" if flagged else ""
    return f"<br><span{cls}>synthetic {row['synthetic']:.4f}{' flagged' if flagged else ''}</span>{at}"
