"""Demo entry: `python -m desktop_app.editor LABEL.png [--image IMG.png] [--workspace WS] [--checkpoint CKPT]`."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m desktop_app.editor", description="Label-map editor demo")
    p.add_argument("label", help="label-id PNG (e.g. *_gtFine_labelIds.png)")
    p.add_argument("--image", help="RGB image shown under the overlay (default: the Cityscapes partner if found)")
    p.add_argument("--workspace", default=str(Path(tempfile.gettempdir()) / "segbalance-editor-demo"),
                   help="workspace receiving autosaves and revisions")
    p.add_argument("--label-set", default="cityscapes", help="built-in name or a classes.json")
    p.add_argument("--checkpoint", help="pix2pixHD checkpoint for the live render pane")
    p.add_argument("--screenshot", help="save a PNG of the window and quit (for checking the layout)")
    args = p.parse_args(argv)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from segbalance.core.datasets.labels import BUILTIN, LabelSet
    from segbalance.core.errors import SegbalanceError
    from segbalance.core.workspace import Workspace
    from segbalance.desktop_app.editor import LabelEditor

    app = QApplication.instance() or QApplication(sys.argv[:1])
    try:
        ls = BUILTIN[args.label_set] if args.label_set in BUILTIN else LabelSet.from_json(args.label_set)
        ws = Workspace(args.workspace)
        image = args.image
        if image is None:
            lab = Path(args.label)
            guess = Path(str(lab).replace("gtFine", "leftImg8bit").replace("_leftImg8bit_labelIds", "_leftImg8bit"))
            image = guess if guess.exists() and guess != lab else None
        w = LabelEditor(ws, ls)
        w.open_file(args.label, image)
    except SegbalanceError as exc:
        print(f"segbalance.desktop_app.editor: error: {exc}", file=sys.stderr)
        return 2
    w.setWindowTitle(f"segbalance label-map editor — {Path(args.label).name}")
    w.resize(1400, 700)
    w.show()
    if args.checkpoint:
        w.render_pane.load_checkpoint(args.checkpoint)
    if args.screenshot:
        def snap() -> None:
            w.grab().save(args.screenshot)
            app.quit()

        if args.checkpoint:  # wait for the first rendering (or give up after 60 s)
            w.render_pane.rendered.connect(lambda *_: QTimer.singleShot(300, snap))
            QTimer.singleShot(60_000, snap)
        else:
            QTimer.singleShot(1500, snap)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
