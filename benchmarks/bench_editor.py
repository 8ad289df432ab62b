"""Label-map editor figures on a full-size 2048x1024 map: stroke latency, undo memory, autosave time.

Run: python benchmarks/bench_editor.py [--cityscapes /path/to/sample]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from segbalance.core.datasets.labels import CITYSCAPES
from segbalance.core.editing.label_edit import LabelEdit, stroke_mask
from segbalance.core.editing.revisions import EditSource, save_working
from segbalance.core.workspace import Workspace


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cityscapes", help="use a real label map from this Cityscapes folder")
    ap.add_argument("--strokes", type=int, default=100)
    args = ap.parse_args()
    if args.cityscapes:
        from segbalance.core.datasets import open_dataset

        ds = open_dataset(args.cityscapes)
        ref = ds.samples()[0]
        label, inst = ds.load_label(ref), ds.load_instance(ref)
        what = ref.id
    else:
        label = np.full((1024, 2048), 7, np.uint8)
        label[:340] = 23
        inst, what = None, "synthetic"
    ed = LabelEdit(label, CITYSCAPES, inst)
    h, w = ed.shape
    rng = np.random.default_rng(0)
    seg_times, stroke_times = [], []
    for i in range(args.strokes):
        pts = [(int(rng.integers(0, w)), int(rng.integers(0, h)))]
        for _ in range(30):  # a mouse drag: 30 short segments
            x, y = pts[-1]
            dx, dy = rng.integers(-40, 41, 2)
            pts.append((int(np.clip(x + dx, 0, w - 1)), int(np.clip(y + dy, 0, h - 1))))
        t0 = time.perf_counter()
        ed.begin_stroke([26, 24, 21, 11][i % 4])
        for a, b in zip(pts, pts[1:], strict=False):
            t1 = time.perf_counter()
            ed.paint(stroke_mask([a, b], 30, "round", ed.shape))
            seg_times.append(time.perf_counter() - t1)
        ed.end_stroke()
        stroke_times.append(time.perf_counter() - t0)
    print(f"map {what} {w}x{h}, {args.strokes} strokes of 30 segments, brush 30 px")
    print(f"segment paint: median {np.median(seg_times) * 1e3:.2f} ms, p95 {np.percentile(seg_times, 95) * 1e3:.2f} ms")
    print(f"whole stroke incl. diff: median {np.median(stroke_times) * 1e3:.1f} ms")
    print(f"undo history: {len(ed.undo_stack)} steps, {ed.undo_nbytes() / 2**20:.2f} MB "
          f"(a full copy of label+instance per step would be {args.strokes * h * w * 5 / 2**20:.0f} MB)")
    t0 = time.perf_counter()
    while ed.undo_stack:
        ed.undo()
    print(f"undo all: {(time.perf_counter() - t0) * 1e3 / args.strokes:.2f} ms per step")
    with tempfile.TemporaryDirectory() as d:
        ws = Workspace(Path(d) / "ws")
        src = EditSource.from_file(Path(d) / "x_gtFine_labelIds.png")
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            save_working(ws, src, ed.label, ed.instance)
            times.append(time.perf_counter() - t0)
        ws.close()
    print(f"autosave after a stroke (label + instance PNG): median {np.median(times) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
