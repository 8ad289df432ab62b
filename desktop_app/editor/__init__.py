"""Label-map editor: `LabelEditor(workspace, label_set, parent)` (canvas, palette, live render pane)."""

from segbalance.desktop_app.editor.editor import LabelEditor

__all__ = ["LabelEditor"]
