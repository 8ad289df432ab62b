"""LabelEditor: the label-map annotation widget (tools, palette, live render pane) the main window mounts.

Open a dataset sample, a generated pair or a label file; every stroke is autosaved in the workspace and
"Save revision" stores a new revision there (the original file is never written).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QLabel,
    QSlider,
    QSpinBox,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from segbalance.core.datasets.base import Dataset as DatasetReader
from segbalance.core.datasets.base import SampleRef
from segbalance.core.datasets.labels import LabelSet
from segbalance.core.editing.label_edit import LabelEdit
from segbalance.core.editing.revisions import Autosaver, EditSource, export_revisions, load_for_edit, save_revision
from segbalance.core.errors import SegbalanceError
from segbalance.core.io import read_png
from segbalance.core.jobs.manual import add_manual_pair
from segbalance.core.workspace import Workspace
from segbalance.desktop_app.editor.canvas import LabelCanvas
from segbalance.desktop_app.editor.palette import HOTKEYS, ClassPalette
from segbalance.desktop_app.editor.render_pane import RenderPane
from segbalance.desktop_app.widgets.elided_label import ElidedLabel

NO_MAP_HINT = "No label map open: pick a sample in the Dataset panel and press Ctrl+L (Sample ▸ Edit label map)"
# Tool, class and edit keys work anywhere in the window while the editor tab is shown (not only when the
# canvas has focus); a hidden tab's shortcuts are inactive, so they never fire over the review keys.
KEY_CONTEXT = Qt.ShortcutContext.WindowShortcut
TOOL_KEYS = {"brush": "B", "eraser": "E", "fill": "G", "polygon": "P", "rect": "R"}


class LabelEditor(QWidget):
    """Label-map editor for one workspace and label set."""

    statusMessage = Signal(str)  # for the main window's status bar
    revisionSaved = Signal(int)  # Revision row id
    pairAdded = Signal(int)  # GeneratedPair row id

    def __init__(self, workspace: Workspace, label_set: LabelSet, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self.label_set = label_set
        self.source: EditSource | None = None
        self.dataset_root: str | None = None  # the layer bank comes from this dataset
        self.edit: LabelEdit | None = None
        self.origin = ""
        self._original_label: np.ndarray | None = None
        self.autosave = True
        self._autosaver: Autosaver | None = None
        self.last_error = ""
        self.last_saved = ""

        self.canvas = LabelCanvas()
        self.palette = ClassPalette(label_set)
        self.render_pane = RenderPane(label_set)
        runs = workspace.path / "runs"
        self.render_pane.start_dir = str(runs if runs.is_dir() else workspace.path)  # its own checkpoints first
        self.status = ElidedLabel(NO_MAP_HINT, preferred_width=600)  # long states never widen the window
        self.status.field_separator = "  |  "  # a narrow window drops trailing fields, never cuts one in half
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._build_toolbar()

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.canvas)
        split.addWidget(self.render_pane)
        split.addWidget(self.palette)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setStretchFactor(2, 1)
        split.setSizes([600, 400, 220])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.toolbar)
        lay.addWidget(self.actions_toolbar)
        lay.addWidget(split, 1)
        lay.addWidget(self.status)

        self.palette.classSelected.connect(self._class_selected)
        self.palette.visibilityChanged.connect(lambda hidden: self.canvas.set_palette(label_set.palette, hidden))
        self.canvas.cursorMoved.connect(self._cursor_moved)
        self.canvas.strokeFinished.connect(self._after_stroke)
        self.canvas.viewChanged.connect(self._update_status)
        self.render_pane.addRequested.connect(self.add_to_workspace)
        self.render_pane.rendered.connect(lambda *_: self._update_status())
        for i, _k in enumerate(HOTKEYS):
            sc = QShortcut(QKeySequence(HOTKEYS[i]), self, context=KEY_CONTEXT)
            sc.activated.connect(lambda i=i: self.palette.select_hotkey(i))
        first = self.palette.hotkey_classes[0] if self.palette.hotkey_classes else label_set.ignore_id
        self.palette.select(first)
        self._cursor = (-1, -1)

    # -- toolbar ------------------------------------------------------------------------------
    def _build_toolbar(self) -> None:
        tb = self.toolbar = QToolBar()
        self.tool_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for tool, key in TOOL_KEYS.items():
            a = QAction(tool.capitalize(), self)
            a.setCheckable(True)
            a.setShortcut(QKeySequence(key))
            a.setShortcutContext(KEY_CONTEXT)
            a.setToolTip(f"{tool} ({key})")
            a.triggered.connect(lambda _=False, t=tool: self.set_tool(t))
            group.addAction(a)
            tb.addAction(a)
            self.addAction(a)
            self.tool_actions[tool] = a
        self.tool_actions["brush"].setChecked(True)
        tb.addSeparator()
        self.shape_box = QComboBox()
        self.shape_box.addItems(["round", "square"])
        self.shape_box.currentTextChanged.connect(self._set_shape)
        self.size_spin = QSpinBox(minimum=1, maximum=512, value=self.canvas.brush_size, suffix=" px")
        self.size_spin.setToolTip("brush size ([ and ] keys)")
        self.size_spin.valueChanged.connect(self._set_size)
        tb.addWidget(self.shape_box)
        tb.addWidget(self.size_spin)
        tb.addSeparator()
        tb.addWidget(QLabel(" only over "))
        self.only_over_box = QComboBox()
        self.only_over_box.addItem("any class", None)
        for c in self.palette.classes:
            self.only_over_box.addItem(f"{c.id} {c.name}", c.id)
        self.only_over_box.currentIndexChanged.connect(self._set_only_over)
        tb.addWidget(self.only_over_box)
        # edit, file and view actions on a row of their own: Save and Export never fall behind the overflow »
        tb = self.actions_toolbar = QToolBar()
        self.undo_action = QAction("Undo", self, shortcut=QKeySequence.StandardKey.Undo)
        self.redo_action = QAction("Redo", self)
        # the platform's redo keys plus Ctrl+Y (labelme/CVAT) and Ctrl+Shift+Z on every OS, each once (a key
        # bound twice is ambiguous and does nothing)
        redo_keys = [k.toString() for k in QKeySequence.keyBindings(QKeySequence.StandardKey.Redo)]
        redo_keys += [k for k in ("Ctrl+Y", "Ctrl+Shift+Z") if k not in redo_keys]
        self.redo_action.setShortcuts([QKeySequence(k) for k in redo_keys])
        self.undo_action.setToolTip("Undo (Ctrl+Z)")
        self.redo_action.setToolTip("Redo (Ctrl+Y, Ctrl+Shift+Z)")
        for a, fn in ((self.undo_action, self.canvas.undo), (self.redo_action, self.canvas.redo)):
            a.setShortcutContext(KEY_CONTEXT)
            a.triggered.connect(fn)
            tb.addAction(a)
            self.addAction(a)
        self.fit_action = QAction("Fit", self, shortcut=QKeySequence("F"))
        self.fit_action.setShortcutContext(KEY_CONTEXT)
        self.fit_action.triggered.connect(self._fit)
        tb.addAction(self.fit_action)
        self.addAction(self.fit_action)
        tb.addSeparator()
        self.paste_action = QAction("Paste layer…", self)
        self.paste_action.setToolTip("Pick a class and a layer from the layer bank, place it, Enter to drop")
        self.paste_action.triggered.connect(self.open_layer_picker)
        tb.addAction(self.paste_action)
        self.save_action = QAction("Save revision", self, shortcut=QKeySequence.StandardKey.Save)
        self.save_action.setShortcutContext(KEY_CONTEXT)
        self.save_action.setToolTip("Save the map as a new revision in the workspace (Ctrl+S)")
        self.save_action.triggered.connect(self.save_revision)
        self.addAction(self.save_action)
        tb.addAction(self.save_action)
        self.export_action = QAction("Export…", self)
        self.export_action.setToolTip("Write the latest revisions as a Cityscapes-layout dataset")
        self.export_action.triggered.connect(self._export_dialog)
        tb.addAction(self.export_action)
        # the view's opacity on this second row: on the first one it fell behind the overflow » at 1366x768
        tb.addSeparator()
        tb.addWidget(QLabel(" opacity "))
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, value=60)
        self.opacity_slider.setFixedWidth(90)
        self.opacity_slider.valueChanged.connect(self._set_opacity)
        tb.addWidget(self.opacity_slider)

    # -- opening ------------------------------------------------------------------------------
    def open_sample(self, ds: DatasetReader, ref: SampleRef) -> None:
        src = EditSource.from_sample(self.workspace, ds, ref)
        self.dataset_root = str(ds.root)
        image = ds.load_image(ref) if ref.image_path else None
        self.open_source(src, image)

    def open_pair(self, pair_id: int) -> None:
        src = EditSource.from_pair(self.workspace, pair_id)
        self.open_source(src, read_png(src.image_path, color=True) if src.image_path else None)

    def open_file(self, label_path: str | Path, image_path: str | Path | None = None) -> None:
        src = EditSource.from_file(label_path, image_path)
        self.open_source(src, read_png(image_path, color=True) if image_path else None)

    def open_source(self, src: EditSource, image: np.ndarray | None = None) -> None:
        """Start editing `src`: from its autosave if one exists, else its latest revision, else the original."""
        label, inst, origin = load_for_edit(self.workspace, src)
        bad = np.setdiff1d(np.unique(label), self.label_set.valid_ids)
        if bad.size:
            raise SegbalanceError(f"label ids {bad[:8].tolist()} are not in label set {self.label_set.name!r}",
                                  src.label_path)
        self.close_autosave()
        self.source, self.origin = src, origin
        self._autosaver = Autosaver(self.workspace, src)
        self.edit = LabelEdit(label, self.label_set, inst)
        try:
            from segbalance.core.io import read_label_png

            self._original_label = read_label_png(src.label_path)
        except SegbalanceError:
            self._original_label = None
        self.canvas._user_view = False
        self.canvas.set_edit(self.edit, image)
        self.canvas.set_palette(self.label_set.palette, self.palette.hidden())
        self._request_render()
        self._update_status()
        self.statusMessage.emit(f"Opened {src.stem} ({origin})")

    # -- settings from the toolbar ------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        if tool != "paste" and self.canvas.tool == "paste":
            self.canvas.cancel_paste()
        self.canvas.tool = tool
        if tool in self.tool_actions:
            self.tool_actions[tool].setChecked(True)
        self.canvas.polygon.clear()
        self._update_status()
        self.canvas.update()

    def set_class(self, class_id: int) -> None:
        self.palette.select(class_id)

    def _class_selected(self, cid: int) -> None:
        self.canvas.class_id = cid
        self._update_status()

    def _set_shape(self, shape: str) -> None:
        self.canvas.brush_shape = shape
        self.canvas.update()

    def _set_size(self, size: int) -> None:
        self.canvas.brush_size = size
        self.canvas.update()

    def _set_only_over(self, _i: int) -> None:
        if self.edit is not None:
            self.edit.only_over = self.only_over_box.currentData()
        self._update_status()

    def _set_opacity(self, v: int) -> None:
        self.canvas.opacity = v / 100.0
        self.canvas.update()

    def _fit(self) -> None:
        self.canvas._user_view = False
        self.canvas.fit()

    # -- after each stroke: autosave + live render --------------------------------------------
    def _after_stroke(self) -> None:
        if self.edit is None or self.source is None:
            return
        if self.autosave and self._autosaver is not None:
            if self._autosaver.error:
                self._error(f"autosave failed: {self._autosaver.error}")
            self._autosaver.submit(self.edit.label, self.edit.instance)
        self._request_render()
        self._update_status()

    def _request_render(self) -> None:
        if self.edit is not None:
            self.render_pane.request(self.edit.label, self.edit.instance, self.edit.revision)

    # -- saving -------------------------------------------------------------------------------
    def save_revision(self, note: str | None = None) -> int | None:
        """Store the map as a new revision in the workspace; returns the Revision id."""
        if self.edit is None or self.source is None:
            return None
        try:
            if self._autosaver is not None:  # a late autosave must not resurrect the working copy
                self._autosaver.flush()
                self._autosaver.discard()
            rev = save_revision(self.workspace, self.source, self.edit.label, self.edit.instance, note=note or None)
        except (SegbalanceError, OSError) as exc:
            self._error(f"save failed: {exc}")
            return None
        self.origin = f"revision {rev.number}"
        self.last_saved = f"Saved revision {rev.number} of {self.source.stem} ({rev.label_path})"
        self.statusMessage.emit(self.last_saved)
        self._update_status()
        self.revisionSaved.emit(rev.id)
        return rev.id

    def status_note(self) -> str:
        """The last save, as said in the status bar and the Log."""
        return self.last_saved

    def export(self, out_dir: str | Path) -> Path | None:
        try:
            out = export_revisions(self.workspace, out_dir)
        except (SegbalanceError, OSError) as exc:
            self._error(f"export failed: {exc}")
            return None
        self.statusMessage.emit(f"Exported revisions to {out}")
        return out

    def _export_dialog(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Export revisions to (Cityscapes layout)")
        if d:
            self.export(d)

    def add_to_workspace(self) -> int | None:
        """Store the painted map and its current rendering as a GeneratedPair (strategy manual)."""
        pane = self.render_pane
        if self.edit is None or not pane.is_current() or pane.last_image is None:
            self._error("no up-to-date rendering of this map yet")
            return None
        try:
            pid = add_manual_pair(
                self.workspace,
                self.edit.label,
                pane.last_image,
                self.edit.instance,
                renderer="pix2pixhd",
                checkpoint_sha256=pane.checkpoint_sha256,
                source_key=self.source.key if self.source else None,
                source_label=self._original_label,
            )
        except (SegbalanceError, OSError) as exc:
            self._error(f"could not add the pair: {exc}")
            return None
        self.statusMessage.emit(f"Added manual pair {pid} to the workspace")
        self.pairAdded.emit(pid)
        return pid

    # -- layer bank ---------------------------------------------------------------------------
    def open_layer_picker(self) -> None:
        from segbalance.desktop_app.editor.layer_picker import LayerPicker

        if self.edit is None:
            return
        picker = LayerPicker(self.workspace, self.label_set, self.dataset_root, self)
        picker.layerChosen.connect(self.start_paste)
        picker.show()
        self.picker = picker

    def start_paste(self, mask: np.ndarray, class_id: int) -> None:
        """Place a layer mask of `class_id` on the map; move/scale it, Enter drops it."""
        self.canvas.start_paste(mask, class_id)
        self.canvas.setFocus()
        self._update_status()

    # -- status -------------------------------------------------------------------------------
    def _cursor_moved(self, x: int, y: int) -> None:
        self._cursor = (x, y)
        self._update_status()

    def class_under_cursor(self) -> str:
        x, y = self._cursor
        if self.edit is None or x < 0:
            return ""
        cid = self.edit.class_at(x, y)
        if cid is None:
            return ""
        c = self.label_set.by_id.get(cid)
        inst = int(self.edit.instance[y, x])
        return f"({x}, {y}) {c.name if c else '?'} [id {cid}, instance {inst}]"

    def _update_status(self) -> None:
        if self.edit is None:
            self.status.setText(NO_MAP_HINT)
            return
        c = self.label_set.by_id.get(self.canvas.class_id)
        parts = [
            f"{self.source.stem if self.source else ''} ({self.origin})",
            f"tool {self.canvas.tool}",
            f"paint {c.name if c else self.canvas.class_id}",
        ]
        if self.canvas.tool in ("brush", "eraser"):
            parts.append(f"{self.canvas.brush_shape} {self.canvas.brush_size}px")
        if self.canvas.tool == "paste":
            parts.append(f"layer x{self.canvas.paste_scale:.2f} (drag, Shift+wheel or +/- to scale, Enter drops)")
        if self.edit.only_over is not None:
            o = self.label_set.by_id.get(self.edit.only_over)
            parts.append(f"only over {o.name if o else self.edit.only_over}")
        parts.append(f"zoom {self.canvas.scale * 100:.0f}%")
        parts.append(f"undo {len(self.edit.undo_stack)} ({self.edit.undo_nbytes() / 2**20:.1f} MB)")
        under = self.class_under_cursor()
        if under:
            parts.append(under)
        if self.size_spin.value() != self.canvas.brush_size:
            self.size_spin.blockSignals(True)
            self.size_spin.setValue(self.canvas.brush_size)
            self.size_spin.blockSignals(False)
        text = "  |  ".join(parts)
        self.status.setStyleSheet("")
        self.status.setText(text)
        if under:
            self.statusMessage.emit(under)

    def _error(self, msg: str) -> None:
        """Problems go to the status line (and the main window's status bar), never a modal dialog mid-stroke."""
        self.last_error = msg
        self.status.setText(msg)
        self.status.setStyleSheet("color:#c0392b")
        self.statusMessage.emit(msg)

    def flush_autosave(self) -> bool:
        """Wait until the latest stroke is on disk."""
        return self._autosaver.flush() if self._autosaver is not None else True

    def close_autosave(self) -> None:
        if self._autosaver is not None:
            self._autosaver.flush()
            self._autosaver.close()
            self._autosaver = None

    def closeEvent(self, ev) -> None:  # noqa: N802
        if self.edit is not None and self.edit.in_stroke:
            self.edit.end_stroke()
            self._after_stroke()
        self.close_autosave()
        super().closeEvent(ev)

