"""Demo entry: `python -m desktop_app.training WORKSPACE [--screenshot PNG]`."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m desktop_app.training", description="Training panel demo")
    p.add_argument("workspace", help="workspace folder (created if missing)")
    p.add_argument("--screenshot", help="save a PNG of the window and quit")
    args = p.parse_args(argv)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from segbalance.core.errors import SegbalanceError
    from segbalance.core.workspace import Workspace
    from segbalance.desktop_app.training import TrainingPanel

    app = QApplication.instance() or QApplication(sys.argv[:1])
    try:
        ws = Workspace(args.workspace)
    except SegbalanceError as exc:
        print(f"segbalance.desktop_app.training: error: {exc}", file=sys.stderr)
        return 2
    w = TrainingPanel(ws)
    w.setWindowTitle(f"segbalance training — {ws.path}")
    w.resize(1300, 750)
    w.show()
    if args.screenshot:
        def snap() -> None:
            runs = w.selected_ids() or [r.id for r in w._runs[:2]]
            if len(runs) >= 2:
                w.runs_table.selectAll()
            w.poll()
            w.tabs.setCurrentIndex(0)
            w.grab().save(args.screenshot)
            app.quit()

        QTimer.singleShot(1500, snap)
    rc = app.exec()
    w.close()
    ws.close()
    # PySide6 6.12 + pyqtgraph can abort while the interpreter garbage-collects Qt wrappers at exit
    # (bool_dealloc); everything is saved by now, so leave the way pyqtgraph's pg.exit() does.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    sys.exit(main())
