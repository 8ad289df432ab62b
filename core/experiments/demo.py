"""The main job on the built-in sample dataset: the demo arms of the experiment, plus the class histogram."""

from __future__ import annotations

from dataclasses import dataclass, replace

from segbalance.core.experiments.protocol import preset, run_experiment


@dataclass
class DemoConfig:
    workspace: str = "demo-workspace"
    n_train: int = 200
    n_val: int = 50
    size: tuple[int, int] = (256, 128)
    device: str = "auto"
    amp: str = "auto"  # the runtime's policy: bf16 where the device runs it fast
    config: str = "demo"  # the experiment preset to run ("ci" for a one-minute smoke run)


def run_demo(cfg: DemoConfig) -> dict:
    """Sample data -> stats + histogram -> plan -> tiny pix2pixHD -> pairs -> PSPNet without/with -> table."""
    from segbalance.core.datasets import open_dataset
    from segbalance.core.datasets.stats import dataset_stats
    from segbalance.core.plots import bar_chart
    from segbalance.core.workspace import Workspace

    exp = preset(cfg.config, device=cfg.device, amp=cfg.amp)
    if cfg.config == "ci":
        exp = replace(exp, arms=("baseline", "recon"))
    else:
        exp = replace(exp, n_train=cfg.n_train, n_val=cfg.n_val, size=cfg.size)
    payload = run_experiment(exp, cfg.workspace)
    ws = Workspace(cfg.workspace)
    try:
        ds = open_dataset(ws.path / "sample-dataset")
        st = dataset_stats(ds, "train", workspace=ws)
        classes = sorted((c for c in st.classes() if c["train_id"] != 255), key=lambda c: -c["pixels"])
        hist = ws.path / "plots" / "class_shares.png"
        bar_chart(hist, [c["name"] for c in classes], [max(c["pixel_share"] * 100, 1e-6) for c in classes],
                  [ds.label_set.by_id[c["id"]].color for c in classes],
                  title=f"sample dataset: pixel share per class ({st.n_images} train images)",
                  ylabel="% of labeled pixels (log)")
        print(f"histogram: {hist}")
        print(f"open the workspace in the desktop app: segbalance-gui {ws.path}")
        payload["histogram"] = str(hist)
    finally:
        ws.close()
    return payload
