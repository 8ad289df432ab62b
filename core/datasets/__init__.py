"""Dataset readers behind one interface; `open_dataset` detects the format."""

from __future__ import annotations

from pathlib import Path

from segbalance.core.datasets.base import Dataset, SampleRef
from segbalance.core.datasets.cityscapes import CityscapesDataset, looks_like_cityscapes
from segbalance.core.datasets.folder import FolderDataset, looks_like_folder
from segbalance.core.errors import DataError

__all__ = ["Dataset", "SampleRef", "CityscapesDataset", "FolderDataset", "open_dataset"]


def open_dataset(path: str | Path, fmt: str = "auto") -> Dataset:
    """Open a dataset folder; with fmt="auto" the layout decides, and nothing matching is an error."""
    root = Path(path)
    if not root.exists():
        raise DataError("dataset folder not found", root)
    if not root.is_dir():
        raise DataError("not a folder", root)
    if fmt == "cityscapes" or (fmt == "auto" and looks_like_cityscapes(root)):
        return CityscapesDataset(root)
    if fmt == "folder" or (fmt == "auto" and looks_like_folder(root)):
        return FolderDataset(root)
    raise DataError(
        "unrecognised dataset layout; expected either Cityscapes (gtFine/{split}/{city}/*_gtFine_labelIds.png "
        "+ leftImg8bit/{split}/{city}/*_leftImg8bit.png) or a folder with images/, masks/ and classes.json",
        root,
    )
