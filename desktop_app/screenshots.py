"""Render the main views of the app to PNG for the README: `python -m desktop_app.screenshots docs/screenshots`.

Builds a throw-away workspace on the built-in sample dataset, drives the real window like a user
(add dataset, pick a sample, plan, generate, review) and grabs each view at the two window sizes the
layout must hold at: 1920x1080 (NAME.png, the README's) and 1366x768 (NAME-1366x768.png).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication  # noqa: E402

SIZES = ((1920, 1080), (1366, 768))


def wait_until(pred: Callable[[], bool], timeout: float = 120.0) -> bool:
    app = QApplication.instance()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if pred():
            return True
        time.sleep(0.01)
    return False


def settle(seconds: float = 0.5) -> None:
    wait_until(lambda: False, seconds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder for the PNG files")
    ap.add_argument("--train", type=int, default=48, help="sample dataset: training images")
    ap.add_argument("--budget", type=int, default=12, help="recipes to plan and generate")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from segbalance.core.datasets.sample import make_sample_dataset
    from segbalance.desktop_app.main import create_main_window

    tmp = Path(tempfile.mkdtemp(prefix="segbalance-shots-"))
    data = make_sample_dataset(tmp / "sample", n_train=args.train, n_val=12, size=(512, 256), seed=0)
    w = create_main_window(settings_path=tmp / "settings.ini")
    w.resize(*SIZES[0])
    w.show()
    w.open_workspace(tmp / "workspace", create=True)
    w.add_dataset(data)
    if not wait_until(lambda: w.state.stats is not None and not w.state.running_jobs()):
        print("screenshots: statistics did not finish", file=sys.stderr)
        return 1
    shots: list[Path] = []

    def grab(name: str) -> None:
        for i, (width, height) in enumerate(SIZES):
            w.resize(width, height)
            settle(0.8)
            if w.width() != width:
                print(f"screenshots: {name}: the window is {w.width()} px wide, not {width}", file=sys.stderr)
            p = args.out / (f"{name}.png" if i == 0 else f"{name}-{width}x{height}.png")
            w.grab().save(str(p))
            shots.append(p)
        w.resize(*SIZES[0])

    # 1. browser + viewer + histogram
    w.browser.step(3)
    wait_until(lambda: w.viewer.label is not None)
    w.histogram.sort.setCurrentText("By frequency")
    grab("main-window")

    # 2. a plan and its predicted effect on the histogram
    b = w.balance
    shares = b.current_shares()
    for name in ("wall", "fence", "traffic light", "rider"):  # rare classes of the sample data
        if name in shares and shares[name] > 0:
            b.set_target(name, min(0.02, 3 * shares[name]))
    b.budget.setValue(args.budget)
    b.start_plan()
    wait_until(lambda: w.state.plan is not None and not w.state.running_jobs(), 300)
    w.histogram.log.setChecked(True)
    grab("balance-plan")

    # 3. generation and review
    if w.state.plan_path is not None:
        w.generation.renderer.setCurrentText("copypaste")
        w.generation.start()
        wait_until(lambda: not w.state.running_jobs(), 600)
        w.docks.generation.raise_()
        w.tabs.setCurrentWidget(w.gallery)
        w.gallery.refresh()
        wait_until(lambda: w.gallery.proxy.rowCount() > 0, 10)
        settle(1.5)  # thumbnails
        grab("review-gallery")
        dlg = w.export_dialog()
        if dlg is not None:
            settle(0.3)
            p = args.out / "export-dialog.png"
            dlg.grab().save(str(p))
            shots.append(p)
            dlg.reject()
    else:
        print("screenshots: no generation view (planning gave no plan)", file=sys.stderr)

    # 4. the label editor (issue 8) on the sample shown first, when the editor is part of this build
    w.tabs.setCurrentWidget(w.viewer)
    if w.edit_current_sample():
        grab("label-editor")

    # 5. the training tab (New-run form, runs, live charts) and the GAN dialog with its timed estimate
    i = w._tab_with("start_run")
    if i is not None:
        w.tabs.setCurrentIndex(i)
        grab("training")
    dlg = w.generation.train_tiny_gan()
    if dlg is not None:
        wait_until(lambda: dlg.seconds_per_iter is not None or "could not" in dlg.estimate.text(), 120)
        settle(0.3)
        p = args.out / "train-gan-dialog.png"
        dlg.grab().save(str(p))
        shots.append(p)
        dlg.reject()

    w.close()
    for p in shots:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
