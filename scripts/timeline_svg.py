#!/usr/bin/env python3
"""Draws a Ferry timeline (Chrome trace JSON from `rt.timeline(path)`) as an
SVG: one lane per rank and thread, one box per task, actor call or transfer.

    python3 scripts/timeline_svg.py timeline.json docs/timeline.svg

For looking around a trace, open the JSON in https://ui.perfetto.dev; this
is for a picture in the README.
"""

import html
import json
import sys

COLORS = {"task": "#4c8bf5", "actor call": "#f5a623", "transfer": "#7ed321"}
LANE_H, LABEL_W, WIDTH, TOP = 22, 170, 960, 30


def main(src, dst):
    events = json.load(open(src))["traceEvents"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"]
               for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    spans = [e for e in events if e["ph"] == "X"]
    if not spans:
        sys.exit(f"{src}: no spans to draw")
    lanes = sorted({(e["pid"], e["tid"]) for e in spans},
                   key=lambda k: (k[0], threads.get(k, "")))
    t0 = min(e["ts"] for e in spans)
    t1 = max(e["ts"] + e["dur"] for e in spans)
    scale = (WIDTH - LABEL_W - 10) / max(t1 - t0, 1)
    height = TOP + LANE_H * len(lanes) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="8" y="18" font-size="13">{html.escape(src.split("/")[-1])}: '
           f'{len(spans)} spans over {(t1 - t0) / 1000:.0f} ms</text>']
    for i, lane in enumerate(lanes):
        y = TOP + i * LANE_H
        name = f"rank {lane[0]} · {threads.get(lane, lane[1])}"
        out.append(f'<text x="8" y="{y + 15}">{html.escape(name)}</text>')
        out.append(f'<line x1="{LABEL_W}" y1="{y + LANE_H - 1}" x2="{WIDTH - 10}" '
                   f'y2="{y + LANE_H - 1}" stroke="#eee"/>')
    for e in spans:
        y = TOP + lanes.index((e["pid"], e["tid"])) * LANE_H + 3
        x = LABEL_W + (e["ts"] - t0) * scale
        w = max(e["dur"] * scale, 1.0)
        color = COLORS.get(e.get("cat"), "#999")
        out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{LANE_H - 6}" '
                   f'fill="{color}" stroke="white" stroke-width="0.5">'
                   f'<title>{html.escape(e["name"])} ({e["dur"] / 1000:.1f} ms)</title></rect>')
    legend_y = TOP + LANE_H * len(lanes) + 18
    x = LABEL_W
    for cat, color in COLORS.items():
        out.append(f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 14}" y="{legend_y}">{cat}</text>')
        x += 110
    out.append("</svg>")
    open(dst, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
