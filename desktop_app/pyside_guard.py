"""Guard against the PySide6 6.12.0 build of this environment dropping references to singletons.

Every call of a void C++ method (widget.update(), setEnabled(), processEvents(), ...) releases one reference
to None that it never took, and every Signal.emit() one to True; after a few thousand calls CPython 3.11
aborts with "Fatal Python error: none_dealloc" (or bool_dealloc at exit). Python 3.12 makes these
singletons immortal; here we do the equivalent by giving them a reference count no session can exhaust.
Applied only when the leak is measured, so a fixed PySide6 leaves the interpreter untouched.
"""

from __future__ import annotations

import ctypes
import sys

_PIN = 1 << 40  # ~10^12 leaked calls before the count could reach zero again


def leaks_singletons() -> bool:
    """True when a void PySide6 call lowers None's reference count (the bug is present)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(16):
        probe.setObjectName("probe")
    return sys.getrefcount(None) < before - 8


def apply() -> bool:
    """Pin None, True and False when the leak is present; returns whether it was applied."""
    if sys.version_info >= (3, 12) or not leaks_singletons():
        return False
    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += _PIN
    return True


APPLIED = apply()
