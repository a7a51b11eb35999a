"""``index.html``: one self-contained page (figures embedded as base64 PNG, links relative to the
report folder), readable offline."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.report.tables import fmt

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}th,td{border:1px solid #ddd;padding:3px 7px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#444}
.warn{background:#fff6e0;border-left:4px solid #e0a000;padding:.5em 1em}.note{color:#555;font-size:.9em}
pre{background:#f7f7f7;padding:.7em;overflow:auto;font-size:.8em}nav a{margin-right:1em}
.files a{margin-right:.8em;font-size:.85em}
"""


@dataclass
class Section:
    anchor: str
    title: str
    body: str = ""


@dataclass
class Page:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def add(self, anchor: str, title: str, body: str) -> None:
        self.sections.append(Section(anchor, title, body))

    def render(self) -> str:
        nav = " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in self.sections)
        parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                 f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>",
                 f"<h1>{html.escape(self.title)}</h1><p class=\"note\">{self.subtitle}</p><nav>{nav}</nav>"]
        for s in self.sections:
            parts.append(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{s.body}</section>')
        parts.append("</body></html>\n")
        return "\n".join(parts)


def esc(text) -> str:
    return html.escape(str(text))


def figure(png: Path, out: Path, caption: str, others: list[Path] | None = None) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    links = " ".join(f'<a href="{esc(p.relative_to(out).as_posix())}">{esc(p.suffix[1:].upper())}</a>'
                     for p in [png, *(others or [])])
    return (f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f'<figcaption>{caption} <span class="files">{links}</span></figcaption></figure>')


def table(df: pd.DataFrame, out: Path | None = None, files: dict[str, Path] | None = None, max_rows: int = 300) -> str:
    if df is None or df.empty:
        body = '<p class="note">(no rows)</p>'
    else:
        shown = df.head(max_rows)
        head = "".join(f"<th>{esc(c)}</th>" for c in shown.columns)
        rows = "".join("<tr>" + "".join(f"<td>{esc(fmt(v))}</td>" for v in row) + "</tr>"
                       for row in shown.itertuples(index=False))
        more = (f'<p class="note">First {max_rows} of {len(df)} rows; the CSV has all.</p>'
                if len(df) > max_rows else "")
        body = f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{more}"
    if files and out is not None:
        links = " ".join(f'<a href="{esc(p.relative_to(out).as_posix())}">{esc(k.upper())}</a>'
                         for k, p in files.items())
        body += f'<p class="files">Table files: {links}</p>'
    return body


def bullet_list(items: list[str], css: str = "") -> str:
    if not items:
        return ""
    lis = "".join(f"<li>{esc(i)}</li>" for i in items)
    return f'<ul class="{css}">{lis}</ul>'


def details(summary: str, inner: str) -> str:
    return f"<details><summary>{esc(summary)}</summary>{inner}</details>"


def pre_json(data) -> str:
    return f"<pre>{esc(json.dumps(data, indent=2, sort_keys=True, default=str))}</pre>"
