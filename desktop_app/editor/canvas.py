"""The painting surface: image + colored label overlay, zoom/pan, and the mouse side of the editing tools.

All pixel work goes through core.editing.label_edit.LabelEdit; this widget only maps mouse positions to map pixels,
shows previews and keeps the overlay buffer in step with the map (bbox-sized updates, never the whole map).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QKeyEvent, QMouseEvent, QPainter, QPen, QTransform, QWheelEvent
from PySide6.QtWidgets import QWidget

from segbalance.core.editing.label_edit import LabelEdit, footprint, rect_mask, stroke_mask

TOOLS = ("brush", "eraser", "fill", "polygon", "rect", "paste")


class LabelCanvas(QWidget):
    """Shows a LabelEdit and turns mouse input into strokes."""

    cursorMoved = Signal(int, int)  # map pixel under the cursor, (-1, -1) outside
    strokeFinished = Signal()  # one undo step was committed
    mapChanged = Signal()  # pixels changed (stroke, undo, redo, load)
    viewChanged = Signal()  # zoom/pan/tool settings changed
    pasteCommitted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(240, 200)
        self.edit: LabelEdit | None = None
        self.tool = "brush"
        self.class_id = 0
        self.brush_size = 15
        self.brush_shape = "round"
        self.opacity = 0.6
        self.hidden: set[int] = set()
        self.scale = 1.0
        self.offset = QPointF(0, 0)  # widget position of map pixel (0, 0)
        self._image: QImage | None = None
        self._image_buf: np.ndarray | None = None
        self._overlay_buf: np.ndarray | None = None
        self._overlay: QImage | None = None
        self._lut = np.zeros((256, 4), np.uint8)
        self._last: tuple[int, int] | None = None
        # a brush press on an unfocused canvas paints only once the mouse moves: a click that just gives the
        # canvas focus (to use its keys) must not leave a dot and an undo step behind
        self._pending_stroke = False
        self._drag_start: tuple[int, int] | None = None
        self._pan_from: QPointF | None = None
        self._cursor: tuple[int, int] | None = None
        self.polygon: list[tuple[int, int]] = []
        # paste: a layer mask waiting to be dropped, its top-left and scale
        self.paste_mask: np.ndarray | None = None
        self.paste_class = 0
        self.paste_pos = (0, 0)
        self.paste_scale = 1.0
        self._paste_grab: tuple[int, int] | None = None
        self._user_view = False  # once the user zooms or pans, resizes stop re-fitting

    # -- content ---------------------------------------------------------------------------
    def set_edit(self, edit: LabelEdit, image: np.ndarray | None = None) -> None:
        self.edit = edit
        h, w = edit.shape
        if image is not None and image.shape[:2] == (h, w):
            self._image_buf = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        else:
            self._image_buf = np.full((h, w, 3), 64, np.uint8)
        self._image = QImage(self._image_buf.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        self._overlay_buf = np.zeros((h, w, 4), np.uint8)
        self._overlay = QImage(self._overlay_buf.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        self.polygon.clear()
        self.cancel_paste()
        self.set_palette(edit.label_set.palette, self.hidden)
        self.fit()
        self.mapChanged.emit()

    def set_palette(self, palette: np.ndarray, hidden: set[int]) -> None:
        self.hidden = set(hidden)
        self._lut[:, :3] = palette
        self._lut[:, 3] = 255
        for cid in self.hidden:
            self._lut[cid, 3] = 0
        self.refresh_overlay()

    def refresh_overlay(self, bbox: tuple[int, int, int, int] | None = None) -> None:
        """Recolor the overlay inside bbox (y0, x0, y1, x1), or all of it."""
        if self.edit is None or self._overlay_buf is None:
            return
        if bbox is None:
            self._overlay_buf[:] = self._lut[self.edit.label]
        else:
            y0, x0, y1, x1 = bbox
            self._overlay_buf[y0:y1, x0:x1] = self._lut[self.edit.label[y0:y1, x0:x1]]
        self.update()

    # -- view ------------------------------------------------------------------------------
    def fit(self) -> None:
        if self.edit is None:
            return
        h, w = self.edit.shape
        s = min(self.width() / w, self.height() / h) if self.width() > 0 and self.height() > 0 else 1.0
        self.scale = max(s, 1e-3)
        self.offset = QPointF((self.width() - w * self.scale) / 2, (self.height() - h * self.scale) / 2)
        self.update()
        self.viewChanged.emit()

    def set_view(self, scale: float, offset: tuple[float, float] = (0.0, 0.0)) -> None:
        self.scale = float(scale)
        self.offset = QPointF(*offset)
        self._user_view = True
        self.update()
        self.viewChanged.emit()

    def zoom_at(self, factor: float, pos: QPointF) -> None:
        self._user_view = True
        new = min(max(self.scale * factor, 0.05), 40.0)
        f = new / self.scale
        self.offset = pos - (pos - self.offset) * f
        self.scale = new
        self.update()
        self.viewChanged.emit()

    def map_pos(self, pos: QPointF | QPoint) -> tuple[int, int]:
        """Map pixel (x, y) under a widget position."""
        p = QPointF(pos)
        x = (p.x() - self.offset.x()) / self.scale
        y = (p.y() - self.offset.y()) / self.scale
        return int(np.floor(x)), int(np.floor(y))

    def _transform(self) -> QTransform:
        return QTransform(self.scale, 0, 0, self.scale, self.offset.x(), self.offset.y())

    def resizeEvent(self, ev) -> None:  # noqa: N802
        super().resizeEvent(ev)
        if self.edit is not None and not self._user_view:
            self.fit()

    # -- painting ----------------------------------------------------------------------------
    def paintEvent(self, _ev) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(40, 40, 40))
        if self.edit is None or self._image is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No label map open")
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        p.setTransform(self._transform())
        p.drawImage(0, 0, self._image)
        p.setOpacity(self.opacity)
        p.drawImage(0, 0, self._overlay)
        p.setOpacity(1.0)
        pen = QPen(QColor(255, 255, 255))
        pen.setCosmetic(True)
        p.setPen(pen)
        if self.polygon:
            pts = [QPointF(x + 0.5, y + 0.5) for x, y in self.polygon]
            if self._cursor is not None:
                pts.append(QPointF(self._cursor[0] + 0.5, self._cursor[1] + 0.5))
            for a, b in zip(pts, pts[1:], strict=False):
                p.drawLine(a, b)
        if self.tool == "rect" and self._drag_start is not None and self._cursor is not None:
            (x0, y0), (x1, y1) = self._drag_start, self._cursor
            p.drawRect(QRectF(min(x0, x1), min(y0, y1), abs(x1 - x0) + 1, abs(y1 - y0) + 1))
        if self.tool in ("brush", "eraser") and self._cursor is not None:
            r = footprint(self.brush_size, self.brush_shape).shape[0]
            cx, cy = self._cursor
            rect = QRectF(cx - r // 2, cy - r // 2, r, r)
            p.drawEllipse(rect) if self.brush_shape == "round" else p.drawRect(rect)
        if self.tool == "paste" and self.paste_mask is not None:
            self._draw_paste_preview(p)
        p.end()

    def _draw_paste_preview(self, p: QPainter) -> None:
        m = self._scaled_paste_mask()
        h, w = m.shape
        color = self._lut[self.paste_class, :3]
        buf = np.zeros((h, w, 4), np.uint8)
        buf[m] = [*color, 200]
        img = QImage(buf.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        x, y = self.paste_pos
        p.drawImage(x, y, img)
        p.drawRect(QRectF(x, y, w, h))

    # -- paste -------------------------------------------------------------------------------
    def start_paste(self, mask: np.ndarray, class_id: int) -> None:
        """Show a layer under the cursor; drag to move, wheel/+/- to scale, Enter to drop, Esc to cancel."""
        self.paste_mask = np.asarray(mask, dtype=bool)
        self.paste_class = int(class_id)
        self.paste_scale = 1.0
        if self.edit is not None:
            h, w = self.edit.shape
            self.paste_pos = ((w - mask.shape[1]) // 2, (h - mask.shape[0]) // 2)
        self.tool = "paste"
        self.update()
        self.viewChanged.emit()

    def _scaled_paste_mask(self) -> np.ndarray:
        from segbalance.core.editing.label_edit import layer_mask

        m = self.paste_mask
        if self.paste_scale == 1.0:
            return m
        reg = layer_mask(m, 0, 0, self.paste_scale, (10**6, 10**6))
        return reg[1] if reg is not None else m

    def set_paste_scale(self, scale: float) -> None:
        self.paste_scale = min(max(float(scale), 0.1), 8.0)
        self.update()
        self.viewChanged.emit()

    def commit_paste(self) -> bool:
        if self.edit is None or self.paste_mask is None:
            return False
        x, y = self.paste_pos
        changed = self.edit.paste_mask(self.paste_class, self.paste_mask, x, y, self.paste_scale)
        self.cancel_paste()
        if changed is not None:
            self.refresh_overlay(changed)
            self.mapChanged.emit()
            self.strokeFinished.emit()
        self.pasteCommitted.emit()
        return changed is not None

    def cancel_paste(self) -> None:
        self.paste_mask = None
        self._paste_grab = None
        if self.tool == "paste":
            self.tool = "brush"
        self.update()

    # -- tools -------------------------------------------------------------------------------
    def _paint_value(self) -> int:
        return self.edit.label_set.ignore_id if self.tool == "eraser" else self.class_id

    def _apply(self, region) -> None:
        changed = self.edit.paint(region)
        if changed is not None:
            self.refresh_overlay(changed)
            self.mapChanged.emit()

    def _end_stroke(self) -> None:
        d = self.edit.end_stroke()
        if d is not None:
            self.strokeFinished.emit()

    def close_polygon(self) -> bool:
        if self.edit is None or len(self.polygon) < 3:
            self.polygon.clear()
            self.update()
            return False
        changed = self.edit.fill_polygon(self.class_id, self.polygon)
        self.polygon.clear()
        if changed is not None:
            self.refresh_overlay(changed)
            self.mapChanged.emit()
            self.strokeFinished.emit()
        self.update()
        return True

    def undo(self) -> None:
        self._history(self.edit.undo if self.edit else None)

    def redo(self) -> None:
        self._history(self.edit.redo if self.edit else None)

    def _history(self, fn) -> None:
        if fn is None:
            return
        bbox = fn()
        if bbox is not None:
            self.refresh_overlay(bbox)
            self.mapChanged.emit()
            self.strokeFinished.emit()

    # -- mouse & keys ------------------------------------------------------------------------
    def _start_stroke(self, x: int, y: int) -> None:
        self.edit.begin_stroke(self._paint_value())
        self._last = (x, y)
        self._apply(stroke_mask([(x, y)], self.brush_size, self.brush_shape, self.edit.shape))

    def mousePressEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        focus_click = not self.hasFocus()
        self.setFocus()
        pos = ev.position()
        if ev.button() == Qt.MouseButton.MiddleButton or (
            ev.button() == Qt.MouseButton.LeftButton and ev.modifiers() & Qt.KeyboardModifier.AltModifier
        ):
            self._pan_from = pos
            return
        if self.edit is None or ev.button() != Qt.MouseButton.LeftButton:
            return
        x, y = self.map_pos(pos)
        if self.tool in ("brush", "eraser"):
            if focus_click:
                self._pending_stroke, self._last = True, (x, y)
            else:
                self._start_stroke(x, y)
        elif self.tool == "fill":
            changed = self.edit.flood_fill(self.class_id, x, y)
            if changed is not None:
                self.refresh_overlay(changed)
                self.mapChanged.emit()
                self.strokeFinished.emit()
        elif self.tool == "polygon":
            self.polygon.append((x, y))
            self.update()
        elif self.tool == "rect":
            self._drag_start = (x, y)
        elif self.tool == "paste" and self.paste_mask is not None:
            self._paste_grab = (x - self.paste_pos[0], y - self.paste_pos[1])

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        pos = ev.position()
        if self._pan_from is not None:
            self.offset += pos - self._pan_from
            self._pan_from = pos
            self._user_view = True
            self.update()
            return
        if self.edit is None:
            return
        x, y = self.map_pos(pos)
        self._cursor = (x, y)
        h, w = self.edit.shape
        inside = 0 <= x < w and 0 <= y < h
        self.cursorMoved.emit(x if inside else -1, y if inside else -1)
        if ev.buttons() & Qt.MouseButton.LeftButton:
            if self.tool in ("brush", "eraser") and self._pending_stroke and self._last is not None:
                self._pending_stroke = False
                self._start_stroke(*self._last)  # a drag after a focus click paints from where it began
            if self.tool in ("brush", "eraser") and self.edit.in_stroke and self._last is not None:
                self._apply(stroke_mask([self._last, (x, y)], self.brush_size, self.brush_shape, self.edit.shape))
                self._last = (x, y)
            elif self.tool == "paste" and self._paste_grab is not None:
                self.paste_pos = (x - self._paste_grab[0], y - self._paste_grab[1])
        self.update()

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        if self._pan_from is not None:
            self._pan_from = None
            return
        if self.edit is None or ev.button() != Qt.MouseButton.LeftButton:
            return
        x, y = self.map_pos(ev.position())
        if self._pending_stroke:  # a click that only focused the canvas
            self._pending_stroke, self._last = False, None
        elif self.tool in ("brush", "eraser") and self.edit.in_stroke:
            self._end_stroke()
            self._last = None
        elif self.tool == "rect" and self._drag_start is not None:
            reg = rect_mask(self._drag_start, (x, y), self.edit.shape)
            self._drag_start = None
            self.edit.begin_stroke(self.class_id)
            self._apply(reg)
            self._end_stroke()
        elif self.tool == "paste":
            self._paste_grab = None
        self.update()

    def mouseDoubleClickEvent(self, ev: QMouseEvent) -> None:  # noqa: N802
        if self.tool == "polygon":
            self.close_polygon()

    def wheelEvent(self, ev: QWheelEvent) -> None:  # noqa: N802
        steps = ev.angleDelta().y() / 120.0
        if self.tool == "paste" and self.paste_mask is not None and ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.set_paste_scale(self.paste_scale * (1.1**steps))
            return
        self._user_view = True
        self.zoom_at(1.25**steps, ev.position())

    def leaveEvent(self, _ev) -> None:  # noqa: N802
        self._cursor = None
        self.cursorMoved.emit(-1, -1)
        self.update()

    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802
        key = ev.key()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if self.tool == "polygon":
                self.close_polygon()
            elif self.tool == "paste":
                self.commit_paste()
            return
        if key == Qt.Key.Key_Escape:
            self.polygon.clear()
            self._drag_start = None
            self.cancel_paste()
            self.update()
            return
        if key == Qt.Key.Key_BracketLeft:
            self.brush_size = max(1, self.brush_size - (1 if self.brush_size <= 10 else 5))
            self.viewChanged.emit()
            self.update()
            return
        if key == Qt.Key.Key_BracketRight:
            self.brush_size = min(512, self.brush_size + (1 if self.brush_size < 10 else 5))
            self.viewChanged.emit()
            self.update()
            return
        if self.tool == "paste" and key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal, Qt.Key.Key_Minus):
            self.set_paste_scale(self.paste_scale * (1.1 if key != Qt.Key.Key_Minus else 1 / 1.1))
            return
        super().keyPressEvent(ev)
