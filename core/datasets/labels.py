"""Label sets: the classes of a dataset, their ids, train ids, colors and categories."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from segbalance.core.errors import NESTED, DataError

IGNORE = 255


@dataclass(frozen=True)
class LabelClass:
    """One class of a label set."""

    id: int
    name: str
    train_id: int
    color: tuple[int, int, int]
    category: str = "object"
    ignore_in_eval: bool = False
    has_instances: bool = False


@dataclass(frozen=True)
class LabelSet:
    """An ordered set of classes; ids index label maps, train ids index networks."""

    name: str
    classes: tuple[LabelClass, ...]
    ignore_id: int = 0  # label id painted by erasers / used for void
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        ids = [c.id for c in self.classes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"label set {self.name!r} has duplicate ids")

    # -- lookups ---------------------------------------------------------------
    @cached_property
    def by_id(self) -> dict[int, LabelClass]:
        return {c.id: c for c in self.classes}

    @cached_property
    def by_name(self) -> dict[str, LabelClass]:
        return {c.name: c for c in self.classes}

    @cached_property
    def valid_ids(self) -> np.ndarray:
        """Ids that may appear in a uint8 label map."""
        return np.array(sorted(c.id for c in self.classes if 0 <= c.id <= 255), dtype=np.int64)

    @cached_property
    def train_classes(self) -> tuple[LabelClass, ...]:
        """One class per train id (the first id carrying it), ordered by train id."""
        seen: dict[int, LabelClass] = {}
        for c in self.classes:
            if c.train_id not in (IGNORE, -1) and not c.ignore_in_eval and c.train_id not in seen:
                seen[c.train_id] = c
        return tuple(seen[t] for t in sorted(seen))

    @property
    def num_train_classes(self) -> int:
        return len(self.train_classes)

    @property
    def label_nc(self) -> int:
        """Channels of a one-hot over label ids (pix2pixHD's label_nc): max id + 1."""
        return int(self.valid_ids.max()) + 1

    @cached_property
    def id_to_train_lut(self) -> np.ndarray:
        """256-entry lookup table from label id to train id (255 = ignore)."""
        lut = np.full(256, IGNORE, dtype=np.uint8)
        for c in self.classes:
            if 0 <= c.id <= 255 and 0 <= c.train_id < 255 and not c.ignore_in_eval:
                lut[c.id] = c.train_id
        return lut

    @cached_property
    def train_to_id_lut(self) -> np.ndarray:
        """256-entry table from train id to the label id that represents it (ignore -> ignore_id)."""
        lut = np.full(256, self.ignore_id, dtype=np.uint8)
        for c in self.train_classes:
            lut[c.train_id] = c.id
        return lut

    @cached_property
    def palette(self) -> np.ndarray:
        """256x3 uint8 RGB colors indexed by label id."""
        pal = np.zeros((256, 3), dtype=np.uint8)
        for c in self.classes:
            if 0 <= c.id <= 255:
                pal[c.id] = c.color
        return pal

    def class_named(self, name: str) -> LabelClass:
        """The class called `name`; unknown names raise with the list of valid ones."""
        key = name.strip()
        if key in self.by_name:
            return self.by_name[key]
        alt = key.replace("_", " ").replace("-", " ")
        if alt in self.by_name:
            return self.by_name[alt]
        valid = ", ".join(c.name for c in self.train_classes) or ", ".join(self.by_name)
        raise DataError(f"unknown class {name!r}; valid names: {valid}")

    def colorize(self, label: np.ndarray) -> np.ndarray:
        """RGB image of a label-id map."""
        return self.palette[label]

    # -- (de)serialisation -----------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "ignore_id": self.ignore_id,
            "classes": [{**asdict(c), "color": list(c.color)} for c in self.classes],
        }

    @classmethod
    def from_dict(cls, data: dict, *, source: str | Path = "<label set>") -> LabelSet:
        """Build from {"name", "classes": [{"id","name","color"[, "train_id", ...]}]} or a bare list."""
        items = data.get("classes") if isinstance(data, dict) else data
        if not isinstance(items, list) or not items:
            raise DataError("expected a non-empty list of classes", source)
        classes = []
        next_train = 0
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "id" not in item or "name" not in item:
                raise DataError(f"class #{i} needs at least 'id' and 'name'", source)
            try:
                cid = int(item["id"])
                color = tuple(int(v) for v in item["color"]) if "color" in item else _auto_color(cid)
            except (TypeError, ValueError) as exc:
                raise DataError(f"class #{i} has a bad id or color ({exc})", source) from None
            if len(color) != 3 or not all(0 <= v <= 255 for v in color):
                raise DataError(f"class {item['name']!r}: color must be three values 0..255", source)
            if not -1 <= cid <= 255:  # -1: a class that never appears in a map (Cityscapes' license plate)
                raise DataError(f"class {item['name']!r}: id {cid} outside 0..255", source)
            for flag in ("ignore_in_eval", "has_instances"):
                if not isinstance(item.get(flag, False), bool):  # bool("false") would be True
                    raise DataError(f"class {item['name']!r}: {flag} must be true or false "
                                    f"(got {item[flag]!r})", source)
            ignore = item.get("ignore_in_eval", False)
            if "train_id" in item:
                train_id = item["train_id"]
                if not isinstance(train_id, int) or isinstance(train_id, bool) or not -1 <= train_id <= 255:
                    raise DataError(f"class {item['name']!r}: train_id must be an integer -1..255 "
                                    f"(got {train_id!r})", source)
            elif ignore:
                train_id = IGNORE
            else:
                train_id = next_train
            if not ignore and train_id not in (IGNORE, -1):
                next_train = max(next_train, train_id + 1)
            classes.append(
                LabelClass(
                    id=cid,
                    name=str(item["name"]),
                    train_id=train_id,
                    color=color,  # type: ignore[arg-type]
                    category=str(item.get("category", "object")),
                    ignore_in_eval=ignore or train_id in (IGNORE, -1),
                    has_instances=bool(item.get("has_instances", False)),
                )
            )
        name = data.get("name", Path(str(source)).stem) if isinstance(data, dict) else Path(str(source)).stem
        ignore_id = data.get("ignore_id", 0) if isinstance(data, dict) else 0
        if not isinstance(ignore_id, int) or isinstance(ignore_id, bool) or not 0 <= ignore_id <= 255:
            raise DataError(f"ignore_id must be an integer 0..255 (got {ignore_id!r})", source)
        names = [c.name for c in classes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:  # class names are how targets, plans and reports refer to classes
            raise DataError(f"duplicate class name(s): {', '.join(repr(n) for n in dup)}", source)
        try:
            return cls(name=str(name), classes=tuple(classes), ignore_id=ignore_id)
        except ValueError as exc:
            raise DataError(str(exc), source) from None

    @classmethod
    def from_json(cls, path: str | Path) -> LabelSet:
        """Read a custom label set (classes.json)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DataError(f"cannot read label set ({exc.strerror})", path) from None
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8 text (byte {exc.start}); save the label set as UTF-8 JSON", path) from None
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON ({exc.msg} at line {exc.lineno})", path) from None
        except RecursionError:
            raise DataError(f"not a label set (JSON {NESTED})", path) from None
        return cls.from_dict(data, source=path)


def _auto_color(cid: int) -> tuple[int, int, int]:
    # Deterministic, well-spread colours for label sets that give none.
    rng = np.random.default_rng(abs(cid) * 7919 + 17)
    return tuple(int(v) for v in rng.integers(40, 256, 3))  # type: ignore[return-value]


# Cityscapes label definitions (ids, train ids, categories, colours) as published with the dataset.
_CS = [
    # name, id, train_id, category, has_instances, ignore_in_eval, color
    ("unlabeled", 0, 255, "void", False, True, (0, 0, 0)),
    ("ego vehicle", 1, 255, "void", False, True, (0, 0, 0)),
    ("rectification border", 2, 255, "void", False, True, (0, 0, 0)),
    ("out of roi", 3, 255, "void", False, True, (0, 0, 0)),
    ("static", 4, 255, "void", False, True, (0, 0, 0)),
    ("dynamic", 5, 255, "void", False, True, (111, 74, 0)),
    ("ground", 6, 255, "void", False, True, (81, 0, 81)),
    ("road", 7, 0, "flat", False, False, (128, 64, 128)),
    ("sidewalk", 8, 1, "flat", False, False, (244, 35, 232)),
    ("parking", 9, 255, "flat", False, True, (250, 170, 160)),
    ("rail track", 10, 255, "flat", False, True, (230, 150, 140)),
    ("building", 11, 2, "construction", False, False, (70, 70, 70)),
    ("wall", 12, 3, "construction", False, False, (102, 102, 156)),
    ("fence", 13, 4, "construction", False, False, (190, 153, 153)),
    ("guard rail", 14, 255, "construction", False, True, (180, 165, 180)),
    ("bridge", 15, 255, "construction", False, True, (150, 100, 100)),
    ("tunnel", 16, 255, "construction", False, True, (150, 120, 90)),
    ("pole", 17, 5, "object", False, False, (153, 153, 153)),
    ("polegroup", 18, 255, "object", False, True, (153, 153, 153)),
    ("traffic light", 19, 6, "object", False, False, (250, 170, 30)),
    ("traffic sign", 20, 7, "object", False, False, (220, 220, 0)),
    ("vegetation", 21, 8, "nature", False, False, (107, 142, 35)),
    ("terrain", 22, 9, "nature", False, False, (152, 251, 152)),
    ("sky", 23, 10, "sky", False, False, (70, 130, 180)),
    ("person", 24, 11, "human", True, False, (220, 20, 60)),
    ("rider", 25, 12, "human", True, False, (255, 0, 0)),
    ("car", 26, 13, "vehicle", True, False, (0, 0, 142)),
    ("truck", 27, 14, "vehicle", True, False, (0, 0, 70)),
    ("bus", 28, 15, "vehicle", True, False, (0, 60, 100)),
    ("caravan", 29, 255, "vehicle", True, True, (0, 0, 90)),
    ("trailer", 30, 255, "vehicle", True, True, (0, 0, 110)),
    ("train", 31, 16, "vehicle", True, False, (0, 80, 100)),
    ("motorcycle", 32, 17, "vehicle", True, False, (0, 0, 230)),
    ("bicycle", 33, 18, "vehicle", True, False, (119, 11, 32)),
    ("license plate", -1, -1, "vehicle", False, True, (0, 0, 142)),
]

CITYSCAPES = LabelSet(
    name="cityscapes",
    classes=tuple(
        LabelClass(id=i, name=n, train_id=t, color=col, category=cat, ignore_in_eval=ig, has_instances=hi)
        for n, i, t, cat, hi, ig, col in _CS
    ),
    ignore_id=0,
)

# CamVid's 11 classes in SegNet's index order, with the palette SegNet's tutorial draws them in, and a
# Cityscapes-style category per class so recombination's occlusion rules (ground, sky, things over stuff) apply.
_CAMVID = [
    # name, category, colour
    ("sky", "sky", (128, 128, 128)),
    ("building", "construction", (128, 0, 0)),
    ("pole", "object", (192, 192, 128)),
    ("road", "flat", (128, 64, 128)),
    ("pavement", "flat", (60, 40, 222)),
    ("tree", "nature", (128, 128, 0)),
    ("sign symbol", "object", (192, 128, 128)),
    ("fence", "construction", (64, 64, 128)),
    ("car", "vehicle", (64, 0, 128)),
    ("pedestrian", "human", (64, 64, 0)),
    ("bicyclist", "human", (0, 128, 192)),
]
CAMVID_VOID = 11

CAMVID = LabelSet(
    name="camvid",
    classes=tuple(LabelClass(id=i, name=n, train_id=i, color=col, category=cat)
                  for i, (n, cat, col) in enumerate(_CAMVID))
    + (LabelClass(id=CAMVID_VOID, name="unlabelled", train_id=IGNORE, color=(0, 0, 0), category="void",
                  ignore_in_eval=True),),
    ignore_id=CAMVID_VOID,
)

BUILTIN = {"cityscapes": CITYSCAPES, "camvid": CAMVID}


def label_set_from_dict(data: dict) -> LabelSet:
    """Rebuild a label set stored in the DB or a plan file (built-ins by name)."""
    if data.get("name") in BUILTIN and "classes" not in data:
        return BUILTIN[data["name"]]
    return LabelSet.from_dict(data)
