"""Summaries of engine results in words, shared by the CLI's output and the app's panels, so both say the
same numbers: what a plan adds, per strategy and per class."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlanCounts:
    recipes: int
    budget: int
    by_strategy: dict[str, int]
    by_class: dict[str, int]  # class name -> recipes adding it, most first
    objective: dict[str, float]


def plan_counts(plan, label_set) -> PlanCounts:
    """Recipes per strategy and per class added (names from `label_set`; unknown ids as 'id N')."""
    by_strategy: dict[str, int] = {}
    by_class: dict[str, int] = {}
    for r in plan.recipes:
        by_strategy[r.strategy] = by_strategy.get(r.strategy, 0) + 1
        for cid in r.classes_added():
            c = label_set.by_id.get(cid)
            name = c.name if c else f"id {cid}"
            by_class[name] = by_class.get(name, 0) + 1
    return PlanCounts(len(plan.recipes), int(plan.budget), dict(sorted(by_strategy.items())),
                      dict(sorted(by_class.items(), key=lambda kv: -kv[1])), dict(getattr(plan, "objective", {}) or {}))


def strategies_line(counts: PlanCounts) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.by_strategy.items()) or "none"


def classes_line(counts: PlanCounts) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.by_class.items()) or "none"


def plan_summary(plan, label_set) -> str:
    """Three lines: recipes and target error, by strategy, classes added."""
    c = plan_counts(plan, label_set)
    obj = c.objective
    gap = f"; target error {obj['before']:.3g} → {obj['after']:.3g}" if "before" in obj and "after" in obj else ""
    return f"{c.recipes} recipes (budget {c.budget}){gap}\nby strategy: {strategies_line(c)}\nadding: {classes_line(c)}"


# -- class statistics for the views ------------------------------------------------------------------------
@dataclass
class ClassRow:
    name: str
    color: tuple[int, int, int]
    pixels: int
    share: float  # of labeled pixels
    images: int
    frequency: float  # fraction of images containing the class


def class_rows(stats) -> list[ClassRow]:
    """Per train class of a DatasetStats: pixel share and image frequency, in train-id order (what the
    histogram draws and the Balance panel lists)."""
    pix, img = stats.train_pixels(), stats.train_images()
    total, n = max(1, int(pix.sum())), max(1, stats.n_images)
    return [
        ClassRow(c.name, tuple(c.color), int(pix[i]), int(pix[i]) / total, int(img[i]), int(img[i]) / n)
        for i, c in enumerate(stats.label_set.train_classes)
    ]


def split_stats(stats, refs_split: dict[str, str], split: str | None):
    """The stats of one split, cut out of the all-splits stats (None = all)."""
    from segbalance.core.datasets.stats import DatasetStats

    if split is None:
        return stats
    samples = [s for s in stats.samples if refs_split.get(s.id) == split]
    return DatasetStats(stats.label_set, split, samples)
