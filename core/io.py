"""PNG and file I/O with the checks and atomic writes every command relies on."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np

from segbalance.core.errors import DataError
from segbalance.core.processes import temp_prefix

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"IEND\xaeB`\x82"


# 2^26 px, e.g. 8192x8192: above the frames of street, aerial-tile and indoor datasets, and low enough that
# plan's layer bank (full-size masks and component maps of the largest label map) stays bounded: docs/limits.md
DEFAULT_MAX_PIXELS = 1 << 26
MAX_PIXELS_ENV = "SEGBALANCE_MAX_PIXELS"


def max_pixels() -> int:
    """The decode limit in pixels: SEGBALANCE_MAX_PIXELS when set (a positive integer), else 2**26."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        raise DataError(f"{MAX_PIXELS_ENV}={raw!r} is not a whole number of pixels") from None
    if value <= 0:
        raise DataError(f"{MAX_PIXELS_ENV} must be positive (got {value})")
    return value


def check_pixel_limit(path: str | Path, height: int, width: int) -> None:
    """Refuse to decode an image above the pixel limit (a decompression bomb takes GBs before it fails)."""
    limit = max_pixels()
    if height * width > limit:
        raise DataError(f"image is {width}x{height} ({height * width / 1e6:.0f} Mpx), over the pixel limit of "
                        f"{limit / 1e6:.0f} Mpx; set {MAX_PIXELS_ENV} to raise it", path)


def png_size(path: str | Path) -> tuple[int, int]:
    """(height, width) from a PNG header, without decoding; raises DataError on a non-PNG or truncated file."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 12))
            tail = fh.read(12)
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror})", path) from None
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise DataError("not a PNG file (bad signature or header)", path)
    if not tail.endswith(PNG_IEND):
        raise DataError("truncated PNG (no IEND chunk at the end)", path)
    width, height = struct.unpack(">II", head[16:24])
    return int(height), int(width)


JPEG_EXTS = (".jpg", ".jpeg")
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def is_jpeg_name(path: str | Path) -> bool:
    return str(path).lower().endswith(JPEG_EXTS)


def jpeg_size(path: str | Path) -> tuple[int, int]:
    """(height, width) from a JPEG's frame header, without decoding; raises DataError on a bad or truncated file.

    Truncation is caught by the missing end-of-image marker, which libjpeg forgives (it pads with grey).
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 16)
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 2))
            tail = fh.read(2)
            while True:  # frame headers usually sit in the first 64 KiB; EXIF thumbnails can push them later
                pos = _jpeg_sof(data)
                if pos is not None or len(data) >= size:
                    break
                fh.seek(len(data))
                data += fh.read(1 << 20)
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror})", path) from None
    if data[:2] != b"\xff\xd8":
        raise DataError("not a JPEG file (bad signature)", path)
    if tail != b"\xff\xd9":
        raise DataError("truncated JPEG (no end-of-image marker)", path)
    if pos is None:
        raise DataError("JPEG without a frame header", path)
    height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
    return int(height), int(width)


def _jpeg_sof(data: bytes) -> int | None:
    """Offset of the first start-of-frame marker, walking the segments after SOI; None if not in `data`."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            return i if i + 9 <= len(data) else None
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def jpeg_orientation(path: str | Path) -> int:
    """The EXIF orientation tag of a JPEG (1 = as stored, also when there is none or it cannot be parsed).

    segbalance reads photos as stored (the size check and every decode ignore the tag), so a writer that
    copies JPEG bytes to a reader that applies the tag must not copy a file whose tag is not 1.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 16)
    except OSError:
        return 1
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, seg_len = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker == 0xE1 and data[i + 4 : i + 10] == b"Exif\0\0":
            tiff = data[i + 10 : i + 2 + seg_len]
            end = {b"II": "<", b"MM": ">"}.get(tiff[:2])
            if end is None or len(tiff) < 8:
                return 1
            ifd = struct.unpack(end + "I", tiff[4:8])[0]
            if ifd + 2 > len(tiff):
                return 1
            for k in range(struct.unpack(end + "H", tiff[ifd : ifd + 2])[0]):
                e = ifd + 2 + 12 * k
                if e + 12 > len(tiff):
                    break
                if struct.unpack(end + "H", tiff[e : e + 2])[0] == 0x0112:
                    return int(struct.unpack(end + "H", tiff[e + 8 : e + 10])[0])
            return 1
        if marker in _JPEG_SOF or marker == 0xDA:
            return 1
        i += 2 + seg_len
    return 1


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of a PNG or JPEG photo from its header (the formats dataset readers list)."""
    return jpeg_size(path) if is_jpeg_name(path) else png_size(path)


def read_png(path: str | Path, *, color: bool = False) -> np.ndarray:
    """Decode a PNG (or, for a .jpg/.jpeg name, a JPEG photo); color=True gives RGB uint8, else the stored array."""
    if is_jpeg_name(path):
        jpeg_size(path)  # signature and truncation check
        # the stored pixels, as the size check and the label map see them: an EXIF orientation tag is not applied
        arr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if arr is None:
            raise DataError("corrupt JPEG (cannot decode)", path)
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB) if color else arr
    path = str(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except FileNotFoundError:
        raise DataError("file not found", path) from None
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror})", path) from None
    if len(head) == 24 and head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        check_pixel_limit(path, height, width)
    flags = (cv2.IMREAD_COLOR if color else cv2.IMREAD_UNCHANGED) | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        arr = cv2.imread(path, flags)
    except cv2.error as exc:  # pragma: no cover - libpng errors normally give None
        raise DataError(f"cannot decode PNG ({exc})", path) from None
    if arr is None:
        if not os.path.exists(path):
            raise DataError("file not found", path)
        raise DataError("corrupt or truncated PNG (cannot decode)", path)
    if color:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return arr


PNG_GREY, PNG_PALETTE, PNG_GREY_ALPHA = 0, 3, 4  # IHDR colour types


def png_format(path: str | Path) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's header; DataError on a non-PNG or truncated file."""
    png_size(path)
    with open(path, "rb") as fh:
        head = fh.read(26)
    return head[24], head[25]


def read_mask_png(path: str | Path) -> np.ndarray:
    """A mask's values as stored: a palette PNG gives its indices (not the palette's colours), a 1-, 2- or 4-bit
    grey PNG its small values (libpng scales them to 0..255); a grey + alpha PNG is refused, it holds no ids."""
    depth, ctype = png_format(path)
    if ctype == PNG_GREY_ALPHA:
        raise DataError("mask is grey + alpha (2 channels); a label map is one channel of class ids (or RGB "
                        "colours): save it without the alpha channel", path)
    if ctype == PNG_PALETTE:
        from PIL import Image  # Pillow comes with matplotlib; OpenCV can only expand a palette to colours

        h, w = png_size(path)
        check_pixel_limit(path, h, w)
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("P") if im.mode != "P" else im, dtype=np.uint8).copy()
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"corrupt or truncated PNG (cannot decode: {exc})", path) from None
    arr = read_png(path)
    if ctype == PNG_GREY and depth < 8:
        arr = arr // (255 // ((1 << depth) - 1))  # back to the stored 0..2^depth-1
    return arr


def read_label_png(path: str | Path) -> np.ndarray:
    """Decode a single-channel label PNG (uint8 or uint16; palette indices, low-bit grey values as stored); a
    header check catches truncation libpng forgives."""
    arr = read_mask_png(path)
    if arr.ndim != 2:
        raise DataError(f"expected a single-channel label map, got {arr.shape[2]} channels", path)
    return arr


def _atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    # raw fds and one path string: generate writes three files per pair, and pathlib/file-object overhead
    # was half of this function's CPU time
    parent = os.path.dirname(path) or "."
    prefix = temp_prefix(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=parent)
    except FileNotFoundError:
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=parent)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):  # name the user's file, not our temporary one (disk full, permissions)
            if exc.errno == errno.EISDIR:
                raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file name", str(path)) from None
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        raise


try:  # ISA-L's deflate: the fast path of encode_png (optional: a bare GPU server may not have it)
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
    _isal_zlib = None

_IDAT_MAX = 1 << 30  # bytes per IDAT chunk (a PNG chunk holds at most 2**31 - 1)
# OpenCV's fastest lossless settings, the fallback without isal: photos SUB filter + Huffman-only zlib; maps
# (long runs of one id, which LZ77 shrinks) zlib level 1 without row filters
PNG_PHOTO_CV2 = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
                 cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]
PNG_MAP_CV2 = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(arr: np.ndarray, *, photo: bool) -> bytes:
    """Lossless PNG bytes of a uint8 RGB or gray array, or a uint16 gray one (instance maps), built for
    generate's write path; photo=True takes RGB and SUB-filters the rows, maps are stored unfiltered.

    libpng spends most of its time in zlib; ISA-L's level-1 deflate encodes photos and maps much faster for
    files about as big (figures: docs/benchmarks.md) and releases the GIL. Without isal this is OpenCV with
    PNG_*_CV2.
    """
    arr = np.ascontiguousarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not ((arr.dtype == np.uint8 and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)))
            or (arr.dtype == np.uint16 and arr.ndim == 2)):
        raise ValueError(f"a PNG here is uint8 HxW or HxWx3, or uint16 HxW; got {arr.dtype} {arr.shape}")
    if _isal_zlib is None:
        if arr.ndim == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".png", arr, PNG_PHOTO_CV2 if photo else PNG_MAP_CV2)
        if not ok:
            raise ValueError("OpenCV could not encode the PNG")
        return buf.tobytes()
    h, w = arr.shape[:2]
    bpp = (3 if arr.ndim == 3 else 1) * arr.itemsize
    rows = (arr.astype(">u2") if arr.dtype == np.uint16 else arr).view(np.uint8).reshape(h, w * bpp)
    filt = np.empty((h, w * bpp + 1), np.uint8)  # each row: its filter type byte, then the filtered bytes
    if photo:  # SUB: each byte minus the one bpp to its left (uint8 wraps mod 256, as PNG wants)
        filt[:, 0] = 1
        filt[:, 1 : bpp + 1] = rows[:, :bpp]
        np.subtract(rows[:, bpp:], rows[:, :-bpp], out=filt[:, bpp + 1 :])
    else:
        filt[:, 0] = 0
        filt[:, 1:] = rows
    data = _isal_zlib.compress(filt.data, 1)
    color = 2 if arr.ndim == 3 else 0
    ihdr = struct.pack(">IIBBBBB", w, h, 8 * arr.itemsize, color, 0, 0, 0)
    parts = [PNG_SIGNATURE, _png_chunk(b"IHDR", ihdr)]
    parts += [_png_chunk(b"IDAT", data[k : k + _IDAT_MAX]) for k in range(0, len(data), _IDAT_MAX)]
    parts.append(_png_chunk(b"IEND", b""))
    return b"".join(parts)


def write_png(path: str | Path, arr: np.ndarray, *, rgb: bool = False, compression: int = 1) -> None:
    """Atomically write a PNG (temporary name, fsync, rename); rgb=True takes an RGB array."""
    if rgb:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise DataError("cannot encode PNG", path)
    atomic_write_bytes(path, buf.tobytes())


def atomic_write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> None:
    """Write bytes so readers see either the old file or the whole new one.

    durable=False skips the per-file fsync for writers of many small files (generate writes three per pair):
    they must call sync_filesystem() before anything (a DB row) claims the files survive a crash.
    """
    _atomic_write_bytes(Path(path), data, durable)


def sync_filesystem(path: str | Path, files: list[Path] | tuple = ()) -> None:
    """Flush the filesystem holding path to disk: one journal commit for a batch of non-durable writes.

    syncfs(2) where libc has it (Linux); elsewhere each of `files` is fsynced (macOS's sync() does not wait
    and Windows has none). Raises OSError when the kernel reports a write error.
    """
    global _syncfs
    if _syncfs is None:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            _syncfs = libc.syncfs
            _syncfs.argtypes = [ctypes.c_int]
        except (OSError, AttributeError, TypeError):
            _syncfs = False
    if _syncfs is False:
        for f in files:
            fd = os.open(f, os.O_RDWR)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if _syncfs(fd) != 0:
            import ctypes

            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


_syncfs = None  # libc's syncfs once looked up, False where there is none


def atomic_write_text(path: str | Path, text: str) -> None:
    _atomic_write_bytes(Path(path), text.encode())


def atomic_write_json(path: str | Path, obj: object) -> None:
    _atomic_write_bytes(Path(path), (json.dumps(obj, indent=2) + "\n").encode())


def atomic_write_npy(path: str | Path, arr: np.ndarray) -> None:
    """Write one array as .npy, atomically (a cached result is either whole or absent)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr), allow_pickle=False)
    _atomic_write_bytes(Path(path), buf.getvalue())


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints can be GBs); the one file hash of the engine."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def bytes_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
