"""Desktop app: open a 3000-sample dataset, scroll the browser end to end, and print how the UI thread fared.

Prints: time until the browser lists the samples, time until class stats are in, thumbnails rendered
per second, and the longest wait of a 10 ms QTimer heartbeat on the UI thread (a stall) while scrolling.
Run: QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui_browser.py [--n 3000] [--size 512x256]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402


def write_dataset(root: Path, n: int, w: int, h: int) -> None:
    """n Cityscapes-layout samples with a few classes each (written once, reused from the cache dir)."""
    from segbalance.core.io import write_png

    rng = np.random.default_rng(0)
    for i in range(n):
        city = f"city{i // 500:02d}"
        stem = f"{city}_{i:06d}_000019"
        lab = np.full((h, w), 7, np.uint8)
        lab[: h // 3] = 23
        lab[h // 3 : h // 2] = 11
        x = int(rng.integers(0, w - w // 4))
        lab[int(h * 0.6) : int(h * 0.8), x : x + w // 4] = 26 if i % 3 else 24
        img = (lab[..., None] * 5 + rng.integers(0, 40, (h, w, 3))).astype(np.uint8)
        write_png(root / "gtFine" / "train" / city / f"{stem}_gtFine_labelIds.png", lab)
        write_png(root / "leftImg8bit" / "train" / city / f"{stem}_leftImg8bit.png", img, rgb=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--size", default="512x256")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    cache = Path(tempfile.gettempdir()) / f"segbalance-bench-gui-{args.n}-{w}x{h}"
    if not (cache / "gtFine").exists():
        t = time.perf_counter()
        write_dataset(cache, args.n, w, h)
        print(f"wrote {args.n} samples at {w}x{h} in {time.perf_counter() - t:.1f} s ({cache})")

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from segbalance.desktop_app.main import create_main_window
    from segbalance.desktop_app.screenshots import wait_until

    tmp = Path(tempfile.mkdtemp(prefix="segbalance-bench-"))
    win = create_main_window(settings_path=tmp / "settings.ini")
    win.resize(1400, 900)
    win.show()
    win.open_workspace(tmp / "ws", create=True)
    app = QApplication.instance()
    gaps: list[float] = []
    last = [time.perf_counter()]

    def beat() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(beat)
    timer.start()
    t0 = time.perf_counter()
    win.add_dataset(cache)
    wait_until(lambda: win.browser.model.rowCount() == args.n, 300)
    t_list = time.perf_counter() - t0
    wait_until(lambda: win.state.stats is not None and not win.state.running_jobs(), 900)
    t_stats = time.perf_counter() - t0
    gaps.clear()
    last[0] = time.perf_counter()
    # scroll end to end the way a user drags the scroll bar: 60 steps, 50 ms apart
    bar = win.browser.view.verticalScrollBar()
    r0 = win.thumbnails.rendered
    t1 = time.perf_counter()
    for k in range(61):
        bar.setValue(bar.maximum() * k // 60)
        end = time.perf_counter() + 0.05
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)
    wait_until(lambda: False, 1.0)
    t_scroll = time.perf_counter() - t1
    rendered = win.thumbnails.rendered - r0
    g = np.array(gaps[1:]) * 1000
    print(f"samples: {args.n} at {w}x{h}")
    print(f"browser lists all samples after {t_list:.2f} s; class stats after {t_stats:.2f} s")
    print(f"scrolled end to end in {t_scroll:.1f} s: {rendered} thumbnails rendered ({rendered / t_scroll:.1f}/s)")
    print(f"UI heartbeat while scrolling: median {np.median(g):.1f} ms, p99 {np.percentile(g, 99):.1f} ms, "
          f"max {g.max():.1f} ms over {len(g)} beats")
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
