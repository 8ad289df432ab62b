"""What a workspace holds, as plain records for the views: its datasets (where they are now) and their
label sets. The app's panels call these instead of querying the DB, so the rules (relative paths inside
the workspace, built-in label sets by name) live here once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from segbalance.core.datasets.labels import BUILTIN, CITYSCAPES, LabelSet, label_set_from_dict
from segbalance.core.errors import SegbalanceError
from segbalance.db import models as m


@dataclass(frozen=True)
class DatasetRecord:
    """A registered dataset: `path` is where it is today (resolved against the workspace), `stored` the DB text."""

    id: int
    path: Path
    stored: str
    format: str
    label_set: dict | None

    @property
    def exists(self) -> bool:
        return self.path.is_dir()


def datasets(ws) -> list[DatasetRecord]:
    """The workspace's datasets in the order they were added."""
    with ws.session() as s:
        rows = s.scalars(select(m.Dataset).order_by(m.Dataset.id)).all()
        return [DatasetRecord(r.id, ws.resolve_stored(r.path), r.path, r.format, r.label_set) for r in rows]


def dataset_paths(ws) -> list[str]:
    """Where each registered dataset lies now (absolute paths, for dataset pickers)."""
    return [str(d.path) for d in datasets(ws)]


def label_set_for(ws, dataset_path: str | Path) -> LabelSet:
    """The label set a dataset was registered with (built-ins by name); Cityscapes when unknown or unreadable."""
    want = Path(dataset_path).resolve()
    rec = next((d for d in datasets(ws) if d.path.resolve() == want), None)
    return label_set_from_record(rec.label_set if rec else None)


def label_set_from_record(data: dict | None) -> LabelSet:
    if not data:
        return CITYSCAPES
    if data.get("name") in BUILTIN:
        return BUILTIN[data["name"]]
    try:
        return label_set_from_dict(data)
    except SegbalanceError:
        return CITYSCAPES
