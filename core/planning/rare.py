"""Which classes count as rare in a dataset, from its own statistics (not from Cityscapes' names).

The rule, used by the experiment's tables and targets and offered to every other caller:
a train class is *rare* when it holds less than RARE_SHARE of the labelled train pixels and appears in at
least one training label map; at most MAX_RARE of them are kept, rarest first, so the tables stay
readable. `--rare a,b,c` replaces the rule by a list. The arms that target a subset take it from the
rare list in its order (rarest first under the rule): `single` adds the first class that has a layer to
paste, `multi` the first MULTI_MAX that have one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from segbalance.core.datasets.labels import LabelSet
from segbalance.core.errors import DataError

RARE_SHARE = 0.02
MAX_RARE = 8
MULTI_MAX = 5


def rare_classes(shares: Mapping[str, float], *, threshold: float = RARE_SHARE, limit: int = MAX_RARE) -> list[str]:
    """Names of the train classes under `threshold` of the labelled pixels (and present), rarest first; the
    app marks every such class, the experiment's tables keep the `limit` rarest."""
    rare = [c for c, s in shares.items() if 0 < s < threshold]
    return sorted(rare, key=lambda c: (shares[c], c))[:limit]


def parse_rare(text: str, ls: LabelSet) -> list[str]:
    """`--rare pole,fence` as the label set's train-class names; unknown or ignored names are one-line errors."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise DataError("--rare needs at least one class name")
    train = {c.name for c in ls.train_classes}
    out = []
    for n in names:
        c = ls.class_named(n)
        if c.name not in train:
            raise DataError(f"--rare: class {c.name!r} is not trained on (ignored in evaluation)")
        if c.name not in out:
            out.append(c.name)
    return out


def single_target(rare: Sequence[str], layers: Mapping[str, int]) -> str | None:
    """The one class the `single` arm adds: the first rare class with a layer in the bank."""
    return next((c for c in rare if layers.get(c, 0) > 0), None)


def multi_targets(rare: Sequence[str], layers: Mapping[str, int], limit: int = MULTI_MAX) -> list[str]:
    """The classes the `multi` arm adds: the first `limit` rare classes with at least one layer."""
    return [c for c in rare if layers.get(c, 0) > 0][:limit]
