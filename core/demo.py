"""The main job on the built-in sample dataset; each step is skipped when its output exists."""

from __future__ import annotations

import json
from dataclasses import dataclass

from core.datasets import open_dataset
from core.progress import cli_progress
from core.sample_data import make_sample_dataset
from core.stats import dataset_stats
from core.workspace import Workspace


@dataclass
class DemoConfig:
    workspace: str = "demo-workspace"
    n_train: int = 200
    n_val: int = 50
    size: tuple[int, int] = (256, 128)
    seed: int = 0
    device: str = "auto"


def run_demo(cfg: DemoConfig) -> dict:
    """Run the pipeline; returns the paths and figures it printed."""
    ws = Workspace(cfg.workspace)
    out: dict = {"workspace": str(ws.path)}
    data = ws.path / "sample-dataset"
    marker = data / ".complete.json"
    want = {"n_train": cfg.n_train, "n_val": cfg.n_val, "size": list(cfg.size), "seed": cfg.seed}
    if not marker.exists() or json.loads(marker.read_text()) != want:
        with cli_progress("sample data", "img") as progress:
            make_sample_dataset(data, cfg.n_train, cfg.n_val, size=cfg.size, seed=cfg.seed, progress=progress)
        marker.write_text(json.dumps(want))
    ds = open_dataset(data)
    with cli_progress("class stats", "img") as progress:
        st = dataset_stats(ds, "train", workspace=ws, progress=progress)
    from core.plots import bar_chart

    classes = sorted((c for c in st.classes() if c["train_id"] != 255), key=lambda c: -c["pixels"])
    hist = ws.path / "plots" / "class_shares.png"
    bar_chart(hist, [c["name"] for c in classes], [max(c["pixel_share"] * 100, 1e-6) for c in classes],
              [ds.label_set.by_id[c["id"]].color for c in classes],
              title=f"sample dataset: pixel share per class ({st.n_images} train images)",
              ylabel="% of labeled pixels (log)")
    out["histogram"] = str(hist)
    print(f"dataset:   {data} ({st.n_images} train images)")
    print("rarest classes: " + ", ".join(f"{c['name']} {c['pixel_share'] * 100:.2f}%" for c in classes[::-1][:7]))
    print(f"histogram: {hist}")
    print(f"workspace: {ws.path}  (open it with: segbalance-gui {ws.path})")
    ws.close()
    return out
