"""PNG charts written by the CLI (matplotlib, Agg backend: no display, no Qt)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from segbalance.core.io import atomic_write_bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str | Path) -> None:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def bar_chart(
    path: str | Path,
    names: Sequence[str],
    values: Sequence[float],
    colors: Sequence[tuple[int, int, int]],
    *,
    title: str,
    ylabel: str,
    log: bool = True,
    overlay: dict[str, Sequence[float]] | None = None,
) -> None:
    """Bar per class in its colour (log scale by default); `overlay` adds named marker series."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(names) + 2), 4.5), dpi=110)
    x = range(len(names))
    ax.bar(x, values, color=[tuple(v / 255 for v in c) for c in colors], edgecolor="#333", linewidth=0.4)
    for label, series in (overlay or {}).items():
        ax.plot(list(x), list(series), marker="_", markersize=14, linestyle="none", label=label)
    if overlay:
        ax.legend(fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_xticks(list(x))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3, which="both")
    _save(plt, fig, path)


def delta_chart(path: str | Path, names: Sequence[str], deltas: Sequence[float], *, title: str, ylabel: str) -> None:
    """Signed bars (green up, red down) of per-class differences."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(names) + 2), 4.0), dpi=110)
    ax.bar(range(len(names)), deltas, color=["#2a9d4b" if d >= 0 else "#c0392b" for d in deltas])
    ax.axhline(0, color="#333", linewidth=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    _save(plt, fig, path)


def grouped_delta_chart(path: str | Path, names: Sequence[str], series: dict[str, Sequence[float]], *,
                        title: str, ylabel: str) -> None:
    """Per-class differences of several arms side by side (one colour per arm)."""
    plt = _plt()
    n = max(1, len(series))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(8.0, 0.6 * len(names) + 2), 4.5), dpi=110)
    cmap = plt.get_cmap("tab10")
    for i, (arm, vals) in enumerate(series.items()):
        xs = [j - 0.4 + width * (i + 0.5) for j in range(len(names))]
        ax.bar(xs, [0.0 if v is None or v != v else v for v in vals], width=width, label=arm, color=cmap(i % 10))
    ax.axhline(0, color="#333", linewidth=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=min(4, n))
    ax.grid(axis="y", alpha=0.3)
    _save(plt, fig, path)
