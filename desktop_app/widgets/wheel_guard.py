"""The mouse wheel scrolls forms: a combo box or spin box the user has not clicked into lets the wheel pass to
the scroll area around it instead of changing its value (one wheel over the training form once switched the
backbone to resnet101)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSpinBox, QApplication, QComboBox, QWidget

GUARDED = (QComboBox, QAbstractSpinBox)


class WheelGuard(QObject):
    """Event filter: a wheel over an unfocused guarded control scrolls the scroll area around it instead (and
    does nothing where there is none)."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.Wheel or not isinstance(obj, QWidget) or obj.hasFocus():
            return False
        area = obj.parentWidget()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parentWidget()
        if area is not None:
            vp = area.viewport()
            pos = QPointF(vp.mapFromGlobal(event.globalPosition().toPoint()))
            QApplication.sendEvent(vp, QWheelEvent(pos, event.globalPosition(), event.pixelDelta(),
                                                   event.angleDelta(), event.buttons(), event.modifiers(),
                                                   event.phase(), event.inverted()))
        event.accept()  # handled here: it neither changes the control nor travels on
        return True


_GUARD = WheelGuard()


def guard_wheel(root: QWidget) -> int:
    """Guard every combo box and spin box under root (and root itself); returns how many were guarded. A click
    still focuses them, and then the wheel changes them as usual."""
    widgets = [root, *root.findChildren(QWidget)]
    n = 0
    for w in widgets:
        if isinstance(w, GUARDED) and not w.property("wheelGuarded"):
            w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # the wheel no longer focuses them
            w.installEventFilter(_GUARD)
            w.setProperty("wheelGuarded", True)
            n += 1
    return n
