"""Thumbnails rendered off the UI thread, newest request first, cached in memory and on disk."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

THUMB_W, THUMB_H = 160, 80
MEMORY_ITEMS = 4000  # 160x80 RGB = 38 KB each: ~150 MB worst case
MAX_QUEUED = 256  # requests for items scrolled past long ago are dropped (re-requested when seen again)


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage owning a copy of an HxWx3 uint8 array (safe to build on any thread)."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def rgba_to_qimage(rgba: np.ndarray) -> QImage:
    rgba = np.ascontiguousarray(rgba)
    h, w = rgba.shape[:2]
    return QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


_PLACEHOLDERS: dict[tuple[int, int], QImage] = {}


def placeholder(w: int = THUMB_W, h: int = THUMB_H) -> QImage:
    """A grey tile shown until a thumbnail is ready (a uniform-size view measures its first item once)."""
    img = _PLACEHOLDERS.get((w, h))
    if img is None:
        img = _PLACEHOLDERS[(w, h)] = rgb_to_qimage(np.full((h, w, 3), 200, np.uint8))
    return img


def fit_thumbnail(rgb: np.ndarray, w: int = THUMB_W, h: int = THUMB_H) -> np.ndarray:
    """Resize keeping the aspect ratio so the result fits in w x h."""
    ih, iw = rgb.shape[:2]
    s = min(w / iw, h / ih)
    size = (max(1, round(iw * s)), max(1, round(ih * s)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


class _Drain(QRunnable):
    def __init__(self, loader: ThumbnailLoader) -> None:
        super().__init__()
        self.loader = loader

    def run(self) -> None:
        from segbalance.desktop_app.workers import lower_thread_priority

        lower_thread_priority()
        self.loader._drain()


class ThumbnailLoader(QObject):
    """request(key, render) -> later `ready(key)`; `get(key)` returns the cached QImage or None.

    `render()` runs on a worker thread and returns an RGB array; keys must change when the file does.
    """

    ready = Signal(str)

    def __init__(self, cache_dir: Path | None = None, threads: int | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache_dir = cache_dir
        self.pool = QThreadPool(self)
        # leave a core for the UI thread and the jobs
        self.pool.setMaxThreadCount(threads or max(1, min(2, (os.cpu_count() or 2) - 1)))
        self._mem: OrderedDict[str, QImage] = OrderedDict()
        self._queue: OrderedDict[str, Callable[[], np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self._active = 0
        self.rendered = 0  # thumbnails actually decoded (not from a cache), for tests and benchmarks

    def set_cache_dir(self, cache_dir: Path | None) -> None:
        self.cache_dir = cache_dir

    def get(self, key: str) -> QImage | None:
        with self._lock:
            img = self._mem.get(key)
            if img is not None:
                self._mem.move_to_end(key)
            return img

    def request(self, key: str, render: Callable[[], np.ndarray], size: tuple[int, int] = (THUMB_W, THUMB_H)) -> None:
        """Render (off the UI thread) and cache a thumbnail fitted into `size` (w, h); `ready(key)` when done."""
        with self._lock:
            if key in self._mem:
                return
            self._queue[key] = (render, size)
            self._queue.move_to_end(key)
            while len(self._queue) > MAX_QUEUED:
                self._queue.popitem(last=False)
            start = self._active < self.pool.maxThreadCount()
            if start:
                self._active += 1
        if start:
            self.pool.start(_Drain(self))

    def clear_queue(self) -> None:
        with self._lock:
            self._queue.clear()

    def _disk_path(self, key: str) -> Path | None:
        if self.cache_dir is None:
            return None
        h = hashlib.sha1(key.encode()).hexdigest()
        return self.cache_dir / h[:2] / f"{h}.jpg"

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._active -= 1
                    return
                key, (render, size) = self._queue.popitem(last=True)  # newest first: what the user looks at now
            try:
                img = self._load(key, render, size)
            except Exception:  # noqa: BLE001 - a bad file gets a grey tile, the browser keeps going
                img = rgb_to_qimage(np.full((THUMB_H, THUMB_W, 3), 90, np.uint8))
            with self._lock:
                self._mem[key] = img
                while len(self._mem) > MEMORY_ITEMS:
                    self._mem.popitem(last=False)
            self.ready.emit(key)

    def _load(self, key: str, render: Callable[[], np.ndarray], size: tuple[int, int]) -> QImage:
        disk = self._disk_path(key)
        if disk is not None and disk.exists():
            bgr = cv2.imread(str(disk), cv2.IMREAD_COLOR)
            if bgr is not None:
                return rgb_to_qimage(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        rgb = fit_thumbnail(render(), *size)
        self.rendered += 1
        if disk is not None:
            try:
                disk.parent.mkdir(parents=True, exist_ok=True)
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
                if ok:
                    tmp = disk.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
                    tmp.write_bytes(buf.tobytes())
                    os.replace(tmp, disk)
            except OSError:
                pass  # a read-only workspace only loses the disk cache
        return rgb_to_qimage(rgb)

    def wait_idle(self, timeout_ms: int = 10_000) -> bool:
        return self.pool.waitForDone(timeout_ms)


def file_key(*paths: str | Path | None) -> str:
    """A cache key that changes when any of the files changes (path, size, mtime)."""
    parts = []
    for p in paths:
        if p is None:
            continue
        try:
            st = os.stat(p)
            parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{p}:missing")
    return "|".join(parts)
