"""Dataset readers behind one interface; `open_dataset` detects the format."""

from __future__ import annotations

from pathlib import Path

from segbalance.core.datasets.ade20k import ADE20KDataset, looks_like_ade20k
from segbalance.core.datasets.base import Dataset, SampleRef
from segbalance.core.datasets.camvid import CamVidDataset, looks_like_camvid
from segbalance.core.datasets.cityscapes import CityscapesDataset, looks_like_cityscapes
from segbalance.core.datasets.folder import FolderDataset, looks_like_folder
from segbalance.core.datasets.mmseg import MmsegDataset, looks_like_mmseg
from segbalance.core.errors import DataError

__all__ = ["Dataset", "SampleRef", "CityscapesDataset", "FolderDataset", "ADE20KDataset", "MmsegDataset",
           "CamVidDataset", "open_dataset"]
FORMATS = ("auto", "cityscapes", "folder", "ade20k", "mmseg", "camvid")


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
    if fmt == "mmseg" or (fmt == "auto" and looks_like_mmseg(root)):
        return MmsegDataset(root)
    if fmt == "ade20k" or (fmt == "auto" and looks_like_ade20k(root)):
        return ADE20KDataset(root)
    if fmt == "camvid" or (fmt == "auto" and looks_like_camvid(root)):
        return CamVidDataset(root)
    raise DataError(
        "unrecognised dataset layout; expected either Cityscapes (gtFine/{split}/{city}/*_gtFine_labelIds.png "
        "+ leftImg8bit/{split}/{city}/*_leftImg8bit.png), a folder with images/, masks/ and classes.json, "
        "ADE20K (ADEChallengeData2016/images/, annotations/), mmseg (img_dir/, ann_dir/, classes.json) or "
        "CamVid as SegNet distributes it (train/ + trainannot/, val/ + valannot/, test/ + testannot/)",
        root,
    )
