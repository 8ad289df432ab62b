"""The built-in sample dataset: procedural street scenes in the Cityscapes layout.

`layout` decides where each class is, `painter` what it looks like (for any Cityscapes label map: the
"oracle" renderer), `writer` saves seeded samples as a dataset.
"""

from segbalance.core.datasets.sample.layout import THING_IDS, make_layout
from segbalance.core.datasets.sample.painter import render_scene
from segbalance.core.datasets.sample.writer import (
    is_sample_dataset,
    make_sample,
    make_sample_dataset,
    sample_name,
    sample_rng,
)

__all__ = ["THING_IDS", "is_sample_dataset", "make_layout", "make_sample", "make_sample_dataset", "render_scene",
           "sample_name", "sample_rng"]
