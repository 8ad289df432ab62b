"""Balance planner: choose recipes so the class distribution after adding their maps is close to a target.

Objective. With n_c the labeled pixels of train class c (originals plus the planned maps),
N = sum_c n_c and s_c = n_c / N, the planner minimises, over the targeted classes T,

    J = sum_{c in T} ((s_c - t_c) / t_c) ** 2

(squared relative error, so a rare class at 0.1 % counts as much as a common one at 10 %),
subject to at most `budget` recipes and, in strict mode (targets of up to 4 classes by default), to
no targeted class ending farther from its target than it started (|s_c - t_c| never exceeds its
initial value) unless no candidate can raise that class (sky, say, which pasting can hardly add).
It is greedy: each step draws a few candidate recipes
(strategy, base map, layers, placement) from a seeded RNG, predicts each candidate's pixel counts
by compositing it on the bank's thumbnails with the very compositor `recombine` uses, and keeps
the candidate that lowers J most; it stops early when no candidate lowers J (more maps would only
move the distribution away). The same stats, bank, target and seed give the same plan.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segbalance.core.datasets.labels import LabelSet
from segbalance.core.errors import NESTED, Cancelled, DataError, SegbalanceError
from segbalance.core.recombine.compose import (
    STRATEGIES,
    Placement,
    Recipe,
    Rules,
    compose,
    recon_background,
    rules_for,
    sort_layers,
)
from segbalance.core.recombine.layers import LayerBank

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]

PLAN_VERSION = 1
STRICT_MAX_CLASSES = 4
PRESETS = {"raise-rare": 0.01, "inverse-frequency": 2.0, "uniform-capped": 5.0}
PRESET_HELP = ("raise-rare[:SHARE] lifts every class below SHARE (default 0.01) to it; "
               "inverse-frequency[:T] targets shares proportional to share**(1/T) (T>=1, default 2; "
               "larger T is flatter); uniform-capped[:CAP] lifts classes toward a uniform share but at most "
               "CAP times (default 5) their current share")


# -- weights from a model's mistakes -----------------------------------------------------------------
IOU_WEIGHT_FLOOR = 0.1  # a class the model already gets right still counts a tenth as much as a missed one


def iou_weights(per_class_iou: dict[str, float | None], classes: list[str]) -> dict[str, float]:
    """Per-class weights (mean 1 over `classes`) that grow with what a model gets wrong: 1 - IoU, floored.

    A class the run could not score (absent from its val split) gets the mean weight: no evidence either way.
    """
    raw = {}
    for c in classes:
        v = per_class_iou.get(c)
        raw[c] = None if v is None or not math.isfinite(v) else max(1.0 - float(v), IOU_WEIGHT_FLOOR)
    known = [v for v in raw.values() if v is not None]
    fill = float(np.mean(known)) if known else 1.0
    w = {c: (fill if v is None else v) for c, v in raw.items()}
    mean = float(np.mean(list(w.values()))) if w else 1.0
    return {c: v / mean for c, v in w.items()}


def run_iou(run_dir: str | Path) -> dict[str, float | None]:
    """Per-class val IoU (fractions) of a finished train-seg run, from its result.json."""
    path = Path(run_dir) / "result.json" if Path(run_dir).is_dir() else Path(run_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read the run's result ({exc.strerror}); is it a finished train-seg run?",
                        path) from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataError("not a train-seg result file (not JSON)", path) from None
    except RecursionError:
        raise DataError(f"not a train-seg result file (JSON {NESTED})", path) from None
    per = data.get("per_class") if isinstance(data, dict) else None
    if not isinstance(per, dict):
        raise DataError("not a train-seg result file (no per_class IoU)", path)
    return {str(k): (None if v is None else float(v)) for k, v in per.items()}


# -- targets ---------------------------------------------------------------------------------------
def _train_class(ls: LabelSet, name: str):
    c = ls.class_named(name)
    if c not in ls.train_classes:
        raise DataError(f"class {c.name!r} is not evaluated (no train id); valid names: "
                        + ", ".join(t.name for t in ls.train_classes))
    return c


def parse_target_spec(spec: str, ls: LabelSet) -> dict[str, float]:
    """'wall=0.02,fence=2%' -> {'wall': 0.02, 'fence': 0.02}; bad names, values or a sum over 1 raise DataError."""
    out: dict[str, float] = {}
    if not spec or not spec.strip():
        raise DataError("empty target; expected e.g. wall=0.02,fence=0.02")
    for part in spec.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise DataError(f"target {part.strip()!r} must look like CLASS=SHARE (e.g. wall=0.02)")
        name, val = part.split("=", 1)
        c = _train_class(ls, name)
        v = val.strip()
        try:
            share = float(v[:-1]) / 100 if v.endswith("%") else float(v)
        except ValueError:
            raise DataError(f"target share {v!r} for {c.name!r} is not a number") from None
        if not 0 < share < 1 or share != share:
            raise DataError(f"target share for {c.name!r} must be between 0 and 1 (got {v})")
        out[c.name] = share
    if not out:
        raise DataError("empty target; expected e.g. wall=0.02,fence=0.02")
    total = sum(out.values())
    if total > 1 + 1e-9:
        raise DataError(f"target shares sum to {total:.4g}, more than 1")
    return out


def preset_target(preset: str, shares: dict[str, float], allowed: list[str] | None = None) -> dict[str, float]:
    """Target shares of a preset ('name' or 'name:param') given the current shares of the train classes."""
    name, _, param = preset.partition(":")
    name = name.strip()
    if name not in PRESETS:
        raise DataError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    try:
        p = float(param) if param.strip() else PRESETS[name]
    except ValueError:
        raise DataError(f"preset parameter {param!r} is not a number") from None
    if not math.isfinite(p):  # nan passes every `<` test below as False
        raise DataError(f"preset parameter of {name} must be a finite number (got {param.strip()})")
    k = len(shares)
    pool = {c: s for c, s in shares.items() if allowed is None or c in allowed}
    if name == "raise-rare":
        if not 0 < p < 1 / max(1, k) + 1e-12:
            raise DataError(f"raise-rare share must be in (0, 1/{k}] (got {p})")
        return {c: p for c, s in pool.items() if s < p}
    if name == "inverse-frequency":
        if p < 1:
            raise DataError(f"inverse-frequency temperature must be >= 1 (got {p})")
        w = {c: max(s, 1e-6) ** (1 / p) for c, s in shares.items()}
        tot = sum(w.values())
        return {c: w[c] / tot for c in pool if w[c] / tot > shares[c]}
    if p <= 1:
        raise DataError(f"uniform-capped cap must be > 1 (got {p})")
    u = 1 / max(1, k)
    return {c: min(u, max(s, 1e-6) * p) for c, s in pool.items() if s < u}


def resolve_target(target: str | dict, shares: dict[str, float], ls: LabelSet,
                   classes: list[str] | None = None) -> dict[str, float]:
    """A target from an explicit spec ('wall=0.02'), a preset name ('raise-rare:0.01') or a dict."""
    allowed = [_train_class(ls, c).name for c in classes] if classes else None
    if isinstance(target, dict):
        out = parse_target_spec(",".join(f"{k}={v}" for k, v in target.items()), ls)
    elif target.split(":")[0].strip() in PRESETS:
        out = preset_target(target, shares, allowed)
    elif "=" in target:
        out = parse_target_spec(target, ls)
    else:
        raise DataError(f"target {target!r} is neither CLASS=SHARE,... nor a preset ({', '.join(PRESETS)})")
    if allowed is not None:
        out = {c: v for c, v in out.items() if c in allowed}
    return out


# -- placement rules --------------------------------------------------------------------------------
@dataclass
class PlaceOptions:
    """How far a layer may move: vertical band around its source ground-contact row, perspective scale range."""

    band: float = 0.04  # std of the ground-contact row shift, as a fraction of the height
    horizon: float = 0.4  # horizon row / height: sizes scale with the distance below it
    scale_min: float = 0.6
    scale_max: float = 1.4
    min_area_frac: float = 2e-4  # layers smaller than this share of the map are not worth pasting
    max_sky_overlap: float = 0.02  # ground classes: share of the layer allowed over sky (then clipped)
    min_visible: float = 0.3  # reject a placement that the base would mostly hide
    order: dict[str, int] | None = None  # occlusion ranks per category (None: flat<construction<...<human)


# -- the plan ---------------------------------------------------------------------------------------
@dataclass
class Plan:
    """Recipes plus predicted before/after shares over train classes and the target, tied to one dataset."""

    recipes: list[Recipe]
    before: dict[str, float]
    after: dict[str, float]
    target: dict[str, float]
    fingerprint: str
    dataset: str = ""
    label_set: str = ""
    budget: int = 0
    strategy: str = "auto"
    seed: int = 0
    objective: dict[str, float] = field(default_factory=dict)
    split: str = "train"  # the layer bank's split the recipes draw from
    skipped: list[str] = field(default_factory=list)  # preset classes left out: no layers to paste
    class_weights: dict[str, float] = field(default_factory=dict)  # per targeted class, mean 1 ({} = equal)

    def to_dict(self) -> dict:
        return {"version": PLAN_VERSION, "dataset": {"path": self.dataset, "fingerprint": self.fingerprint,
                                                     "label_set": self.label_set, "split": self.split},
                "budget": self.budget, "strategy": self.strategy, "seed": self.seed, "target": self.target,
                "before": self.before, "after": self.after, "objective": self.objective, "skipped": self.skipped,
                "class_weights": self.class_weights,
                "recipes": [r.to_dict() for r in self.recipes]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, data: str | dict, *, source: str | Path = "plan") -> Plan:
        """Parse and validate a plan; anything malformed (e.g. edited by hand) raises DataError naming it."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON ({exc.msg} at line {exc.lineno})", source) from None
            except RecursionError:
                raise DataError(f"not a segbalance plan (JSON {NESTED})", source) from None
        if not isinstance(data, dict) or "recipes" not in data or "dataset" not in data:
            raise DataError("not a segbalance plan (no 'dataset'/'recipes')", source)
        if data.get("version") != PLAN_VERSION:
            raise DataError(f"unsupported plan version {data.get('version')!r}", source)
        dsd = data["dataset"]
        if not isinstance(dsd, dict) or not isinstance(dsd.get("fingerprint"), str):
            raise DataError("plan has no dataset fingerprint", source)
        if not isinstance(data["recipes"], list):
            raise DataError("'recipes' must be a list", source)
        try:
            recipes = [Recipe.from_dict(r, where=f"recipe {i}") for i, r in enumerate(data["recipes"])]
        except DataError as exc:
            raise DataError(str(exc), source) from None
        shares = {}
        for k in ("before", "after", "target"):
            v = data.get(k, {})
            if not isinstance(v, dict) or not all(isinstance(x, (int, float)) for x in v.values()):
                raise DataError(f"'{k}' must map class names to shares", source)
            shares[k] = {str(a): float(b) for a, b in v.items()}
        weights = data.get("class_weights", {})
        if not isinstance(weights, dict) or not all(isinstance(x, (int, float)) for x in weights.values()):
            raise DataError("'class_weights' must map class names to numbers", source)
        skipped = data.get("skipped", [])
        if not isinstance(skipped, list) or not all(isinstance(x, str) for x in skipped):
            raise DataError("'skipped' must be a list of class names", source)
        try:
            return cls(recipes, shares["before"], shares["after"], shares["target"], dsd["fingerprint"],
                       str(dsd.get("path", "")), str(dsd.get("label_set", "")), int(data.get("budget", 0)),
                       str(data.get("strategy", "auto")), int(data.get("seed", 0)),
                       dict(data.get("objective", {})), str(dsd.get("split", "train")), list(skipped),
                       {str(k): float(v) for k, v in weights.items()})
        except (TypeError, ValueError) as exc:
            raise DataError(f"malformed plan field ({exc})", source) from None

    def save(self, path: str | Path) -> None:
        from segbalance.core.io import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(f"cannot read plan ({exc.strerror})", path) from None
        except UnicodeDecodeError as exc:
            raise DataError(f"not a segbalance plan (not UTF-8 text, byte {exc.start})", path) from None
        return cls.from_json(text, source=path)

    def check_dataset(self, ds, source: str | Path = "plan") -> None:
        """Refuse a plan made for another dataset (or for this one before its sample list changed)."""
        fp = ds.fingerprint()
        if fp != self.fingerprint:
            raise DataError(f"plan was made for another dataset (fingerprint {self.fingerprint}, "
                            f"{ds.root} has {fp})", source)
        for i, r in enumerate(self.recipes):
            for name in r.sources():
                if name not in _names(ds):
                    raise DataError(f"recipe {i} refers to sample {name!r}, which {ds.root} does not have", source)
            for p in r.layers:
                if p.class_id not in ds.label_set.by_id:
                    raise DataError(f"recipe {i} pastes class id {p.class_id}, not in the label set", source)


def _names(ds) -> set[str]:
    from segbalance.core.recombine.compose import sample_refs

    return set(sample_refs(ds))


# -- planning ---------------------------------------------------------------------------------------
class _Sim:
    """Candidate generation and count prediction on the bank's thumbnails."""

    def __init__(self, bank: LayerBank, opts: PlaceOptions, paste_ids: list[int]) -> None:
        self.bank = bank
        self.opts = opts
        self.ls = bank.label_set
        self.rules: Rules = rules_for(self.ls, opts.order)
        self.f = bank.factor
        self.lut = self.ls.id_to_train_lut
        self.nt = self.ls.num_train_classes
        c = bank.cols
        self.by_class: dict[int, np.ndarray] = {}
        for cid in set(paste_ids) | {int(v) for v in np.unique(c["class_id"]) if self.rules.thing[int(v)]}:
            rows = bank.rows_of_class(cid)
            if rows.size == 0:
                continue
            si = c["sample_idx"][rows]
            area_img = np.array([bank.samples[int(k)]["height"] * bank.samples[int(k)]["width"] for k in si])
            big = rows[c["area"][rows] >= opts.min_area_frac * area_img]
            self.by_class[cid] = big if big.size else rows
        self.fillers = sorted(k for k in self.by_class if self.rules.thing[k])
        self._masks: dict[int, np.ndarray] = {}

    def mask(self, r: int) -> np.ndarray:
        m = self._masks.get(r)
        if m is None:
            if len(self._masks) > 20000:
                self._masks.clear()
            m = self._masks[r] = self.bank.mask(r)
        return m

    def place(self, r: int, si: int, thumb: np.ndarray, rng: np.random.Generator) -> Placement | None:
        b, o, c = self.bank, self.opts, self.bank.cols
        src = b.samples[int(c["sample_idx"][r])]
        H, W = b.samples[si]["height"], b.samples[si]["width"]
        x, y, w, h = (int(c[k][r]) for k in ("x", "y", "w", "h"))
        cid = int(c["class_id"][r])
        bottom = float(c["bottom"][r])
        hz = o.horizon
        for _ in range(4):
            b2 = float(np.clip(bottom + rng.normal(0, o.band), min(bottom, hz + 0.02), 1.0))
            persp = (b2 - hz) / (bottom - hz) if bottom > hz + 0.02 else 1.0
            s = float(np.clip(persp, o.scale_min, o.scale_max)) * H / src["height"]
            pw, ph = max(1, int(round(w * s))), max(1, int(round(h * s)))
            if ph > H or pw > W:
                continue
            yb = int(round(b2 * H))
            y0 = yb - ph
            lo = -pw // 4
            x0 = int(rng.integers(lo, max(lo + 1, W - (3 * pw) // 4)))
            flip = bool(rng.random() < 0.5)
            p = Placement(b.samples[int(c["sample_idx"][r])]["name"], int(c["key"][r]), cid, (x, y, w, h),
                          x0, y0, pw, ph, flip)
            if self._plausible(p, thumb, W):
                return p
        return None

    def _plausible(self, p: Placement, thumb: np.ndarray, W: int) -> bool:
        from segbalance.core.recombine.compose import placed_mask

        rl = self.rules
        m, x0, y0 = placed_mask(self.mask(self.bank.row(p.sample, p.key)), p, self.f)
        th, tw = thumb.shape
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(tw, x0 + m.shape[1]), min(th, y0 + m.shape[0])
        if xa >= xb or ya >= yb:
            return False
        mm = m[ya - y0 : yb - y0, xa - x0 : xb - x0]
        under = thumb[ya:yb, xa:xb][mm.view(bool)]
        n = max(1, int(m.sum()))
        if under.size == 0:
            return False
        cid = p.class_id
        if rl.ground[cid] and rl.sky[under].sum() > self.opts.max_sky_overlap * n:
            return False  # road or terrain in the sky
        if rl.allow(cid)[under].sum() < self.opts.min_visible * n:
            return False  # hidden behind the base, or over the ego vehicle
        if self.ls.by_id[cid].category != "object" and not rl.ground[cid]:
            # things standing on something: the pixel under the layer's foot must not be sky
            # (poles, lights and signs of the "object" category may legitimately hang in the air)
            yy = min(th - 1, max(0, (p.y + p.h) // self.f))
            xx = min(tw - 1, max(0, (p.x + p.w // 2) // self.f))
            if rl.sky[thumb[yy, xx]]:
                return False
        return True

    def candidate(self, strategy: str, needy: list[int], weights: np.ndarray, seed: int
                  ) -> tuple[Recipe, np.ndarray] | None:
        rng = np.random.default_rng(seed)
        b = self.bank
        si = int(rng.integers(len(b.samples)))
        thumb = b.thumb(si).copy()
        if strategy == "recon":
            thumb = recon_background(thumb, self.rules, step=1)
        p = weights / weights.sum()
        if strategy == "single":
            chosen = [needy[int(rng.choice(len(needy), p=p))]]
            per = [int(rng.integers(2, 7))]
        else:
            # half the time every class still short of its target: a map that holds them all raises them
            # all, where a map with only some would dilute the others
            k = len(needy) if rng.random() < 0.5 else min(len(needy), int(rng.integers(2, 6)))
            idx = rng.choice(len(needy), size=k, replace=False, p=p)
            chosen = [needy[int(i)] for i in sorted(idx)]
            per = [int(rng.integers(1, 4)) for _ in chosen]
        picks: list[int] = []
        for cid, n in zip(chosen, per, strict=True):
            rows = self.by_class[cid]
            picks += [int(rows[int(rng.integers(rows.size))]) for _ in range(n)]
        if strategy == "recon" and self.fillers:
            # a reconstructed street needs its ordinary objects back, drawn from other maps
            for _ in range(int(rng.integers(3, 9))):
                cid = self.fillers[int(rng.integers(len(self.fillers)))]
                rows = self.by_class[cid]
                picks.append(int(rows[int(rng.integers(rows.size))]))
        layers = [pl for r in picks if (pl := self.place(r, si, thumb, rng)) is not None]
        if not any(pl.class_id in needy for pl in layers):
            return None
        s = b.samples[si]
        recipe = Recipe(strategy, s["name"], (s["height"], s["width"]), layers, seed, self.opts.order)
        return recipe, self.predict(recipe, thumb)

    def predict(self, recipe: Recipe, thumb: np.ndarray) -> np.ndarray:
        """Predicted train-id pixel counts (float, full-resolution units) of a recipe's map."""
        lab = thumb.copy()
        layers = sort_layers(recipe.layers, self.rules)
        compose(lab, None, layers, lambda p: self.mask(self.bank.row(p.sample, p.key)), self.rules, self.f)
        counts = np.bincount(lab.ravel(), minlength=256)
        scale = recipe.size[0] * recipe.size[1] / lab.size
        t = self.lut
        keep = t != 255
        return np.bincount(t[keep].astype(np.int64), weights=counts[keep] * scale, minlength=self.nt)[: self.nt]


def check_budget(budget: object) -> int:
    """The budget, or DataError unless it is a whole number of new maps, at least 1 (the planner's rule, which
    the CLI applies before building the layer bank)."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise DataError(f"--budget must be at least 1 new map (got {budget})")
    return budget


def parse_strategy(strategy: str | dict) -> dict[str, float]:
    """'auto' (all three), one name, or a mix 'single=0.5,multi=0.3,recon=0.2' -> probabilities."""
    if isinstance(strategy, dict):
        mix = {str(k): float(v) for k, v in strategy.items()}
    elif strategy == "auto":
        mix = {s: 1.0 for s in STRATEGIES}
    elif strategy in STRATEGIES:
        mix = {strategy: 1.0}
    else:
        mix = {}
        for part in strategy.split(","):
            name, _, v = part.partition("=")
            try:
                mix[name.strip()] = float(v) if v.strip() else 1.0
            except ValueError:
                raise DataError(f"strategy weight {v!r} is not a number") from None
    bad = [k for k in mix if k not in STRATEGIES]
    if bad or not mix or any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise DataError(f"strategy must be auto, single, multi, recon or a mix like single=0.5,multi=0.5 "
                        f"(got {strategy!r})")
    tot = sum(mix.values())
    return {k: v / tot for k, v in mix.items() if v > 0}


def shares_of(counts: np.ndarray, ls: LabelSet) -> dict[str, float]:
    tot = float(counts.sum()) or 1.0
    return {c.name: float(counts[c.train_id]) / tot for c in ls.train_classes}


def plan_balance(stats, bank: LayerBank, target: str | dict, budget: int, strategy: str | dict = "auto",
                 classes: list[str] | None = None, seed: int = 0, *, candidates: int = 8,
                 options: PlaceOptions | None = None, strict: bool | None = None,
                 class_weights: dict[str, float] | None = None,
                 progress: Progress | None = None, cancel: CancelCheck | None = None) -> Plan:
    """Greedy plan of at most `budget` recipes minimising the squared relative error to the target shares.

    `stats` is a DatasetStats (current pixel counts), `target` a spec/preset string or {class: share};
    `classes` limits which classes are targeted and pasted. `strict` (default: on for targets of up to
    STRICT_MAX_CLASSES classes) keeps every targeted class from ending farther from its target than it
    started; presets over many classes rarely allow that at every step, so there J alone decides.
    `class_weights` (e.g. `iou_weights` of a run) scale each targeted class's term in J and its pull on the
    candidates, so the budget goes first to the classes the model gets most wrong.
    Raises DataError on unusable input.
    """
    ls = bank.label_set
    check_budget(budget)
    mix = parse_strategy(strategy)
    opts = options or PlaceOptions()
    n0 = stats.train_pixels().astype(np.float64)
    before = shares_of(n0, ls)
    tgt = resolve_target(target, before, ls, classes)
    if not tgt:
        raise DataError("nothing to do: every selected class already meets the target")
    have = bank.layer_counts()
    names = {c.name: c for c in ls.train_classes}
    empty = [n for n in tgt if have.get(names[n].id, 0) == 0]
    if empty and (isinstance(target, dict) or "=" in str(target)):
        raise DataError(f"nothing to paste: no layers of {', '.join(empty)} in the dataset's layer bank")
    tgt = {n: v for n, v in tgt.items() if n not in empty}
    if not tgt:
        raise DataError(f"nothing to paste: no layers of {', '.join(empty)} in the dataset's layer bank")
    ids = [names[n].id for n in tgt]
    tids = np.array([names[n].train_id for n in tgt])
    tv = np.array([tgt[n] for n in tgt])
    cw = class_weights or {}
    bad = [k for k, v in cw.items() if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0)]
    if bad:
        raise DataError(f"class weight of {', '.join(bad)} must be a finite number >= 0")
    tw = np.array([float(cw.get(n, 1.0)) for n in tgt])
    tw = tw / tw.mean() if tw.sum() > 0 else np.ones_like(tw)
    sim = _Sim(bank, opts, ids)
    if strict is None:
        strict = len(ids) <= STRICT_MAX_CLASSES
    rng = np.random.default_rng(seed)
    strategies = list(mix)
    sp = np.array([mix[s] for s in strategies])

    def objective(n: np.ndarray) -> float:
        return float((((n[tids] / n.sum()) - tv) / tv) ** 2 @ tw)

    n = n0.copy()
    j0 = cur = objective(n)
    dist0 = np.abs(n[tids] / n.sum() - tv)
    recipes: list[Recipe] = []
    stale = 0
    while len(recipes) < budget:
        if cancel and cancel():
            raise Cancelled()
        share = n[tids] / n.sum()
        gap = np.clip((tv - share) / tv, 0, None)
        needy_mask = gap > 0
        if not needy_mask.any():
            needy_mask[:] = True
            gap = np.ones_like(gap)
        needy = [i for i, k in zip(ids, needy_mask, strict=True) if k]
        w = (gap * tw)[needy_mask] + 1e-3
        cands = []
        raisable: set[int] = set()  # targeted classes some candidate of this round can raise
        for _ in range(candidates):
            strat = strategies[int(rng.choice(len(strategies), p=sp))]
            cand = sim.candidate(strat, needy, w, int(rng.integers(2**31 - 1)))
            if cand is None:
                continue
            d = cand[1]
            n2 = n + d
            raisable.update(np.flatnonzero(d[tids] / max(d.sum(), 1.0) > share).tolist())
            worse = np.flatnonzero(np.abs(n2[tids] / n2.sum() - tv) > dist0 + 1e-12)
            cands.append((objective(n2), cand, worse))
        # never leave a targeted class farther from its target than it started, unless no candidate could
        # raise it this round (e.g. sky, which pasting can hardly add): then it may be left behind
        feasible = [c for c in cands if c[2].size == 0]
        if not feasible:
            feasible = [c for c in cands if not set(c[2].tolist()) & raisable]
        if not feasible and not strict:
            feasible = cands
        best = min(feasible, key=lambda c: c[0]) if feasible else None
        if best is None or best[0] >= cur - 1e-12:
            stale += 1
            if stale >= 4:
                break
            continue
        stale = 0
        cur = best[0]
        recipes.append(best[1][0])
        n += best[1][1]
        if progress:
            progress(len(recipes), budget)
    if progress:
        progress(budget, budget)
    return Plan(recipes, before, shares_of(n, ls), tgt, bank.fingerprint, "", ls.name, budget,
                strategy if isinstance(strategy, str) else ",".join(f"{k}={v}" for k, v in mix.items()), seed,
                {"before": j0, "after": cur}, bank.split, sorted(empty),
                {n: float(x) for n, x in zip(tgt, tw, strict=True)} if class_weights else {})


__all__ = ["Plan", "PlaceOptions", "PRESETS", "check_budget", "iou_weights", "parse_strategy", "parse_target_spec",
           "plan_balance", "run_iou", "preset_target", "resolve_target", "shares_of", "SegbalanceError"]
