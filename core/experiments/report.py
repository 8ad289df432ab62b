"""The experiment's report: per-arm rows with paired evidence against the baseline, and the markdown tables.

Kept apart from the protocol (which trains and caches) so the numbers' presentation can change without
touching how they are made, and so other front ends (the app) can render the same rows.
"""

from __future__ import annotations

import math

import numpy as np

from segbalance.core.experiments.arms import NOISY_ARMS, PAIR_SOURCE


def results_header(cfg, where: str, n_val: int, gan: str) -> str:
    """The paragraph above results.md's tables: what was run and how to read the intervals and words."""
    return (f"PSPNet-{cfg.backbone.replace('resnet', '')} on {where} ({cfg.name}: {cfg.seeds} paired "
            f"seed(s), {cfg.seg_iters} iterations, budget {cfg.budget} pairs per arm, {n_val} {cfg.eval_split} "
            f"images; "
            f"{gan}); "
            f"IoU in %. Δ is the paired difference to the baseline (same seed); its 95% intervals cover "
            f"re-running the whole pipeline (seeds: t over paired seeds) and the choice of {cfg.eval_split} "
            f"images "
            f"(paired bootstrap, {cfg.n_boot} replicates). The verdict is *gain* or *loss* only when every "
            f"interval lies on one side of 0."
            + (" With one seed, training noise is not measured." if cfg.seeds < 2 else "")
            + " gen score: mIoU of the baseline segmenter on the arm's rendered images against their "
            f"label maps (its score on real {cfg.eval_split} images is the ceiling); % of oracle: its share "
            "of the "
            "oracle renderer's score on the very same maps, with a 95% paired bootstrap over those maps.\n\n")


def _mean_std(values: list[float]) -> tuple[float, float]:
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return float("nan"), float("nan")
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def _pts(iv) -> list[float] | None:
    return None if iv is None else [iv.lo * 100, iv.hi * 100]


def _evidence(base_vals: list, arm_vals: list, boot) -> dict:
    """Paired delta (points), its intervals over seeds and over val images, and the word they earn."""
    from segbalance.core.experiments.evidence import decide, seed_interval

    deltas = [a - b for a, b in zip(arm_vals, base_vals, strict=True) if a is not None and b is not None]
    siv = seed_interval(deltas)
    return {"delta": float(np.mean(deltas)) * 100 if deltas else None, "seeds": _pts(siv),
            "images": _pts(boot), "word": decide(siv, boot)}


def _never_learned(values: list) -> bool:
    """True when every run scored the class 0 (a class no run predicts right has no Δ worth a word)."""
    seen = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return bool(seen) and max(seen) == 0


def summarize(results: dict[str, list[dict]], class_names: list[str], counts: dict[str, list] | None = None,
              resolv: list | None = None, extras: dict[str, dict] | None = None, n_boot: int = 1000) -> dict:
    """Per arm: mIoU mean/std (in %), per-class IoU means (in %), and, against the baseline, paired deltas
    of mIoU and of every class with their 95% intervals and words; unresolved classes say why."""
    from segbalance.core.experiments.evidence import bootstrap_deltas

    extras = extras or {}
    unresolved = {r.name: r.reason for r in resolv or []}
    rows: dict[str, dict] = {}
    for arm, runs in results.items():
        miou = _mean_std([r["miou"] * 100 for r in runs])
        per_class = {}
        for c in class_names:
            vals = [r["per_class"].get(c) for r in runs]
            per_class[c] = _mean_std([v * 100 for v in vals if v is not None])[0]
        rows[arm] = {"miou": miou[0], "miou_std": miou[1], "seeds": len(runs), "per_class": per_class,
                     "runs": [r["miou"] * 100 for r in runs], **extras.get(arm, {})}
    base = results.get("baseline")
    for arm, row in rows.items():
        if base is None:
            row["delta"] = None
            row["delta_per_class"] = {}
            continue
        runs = results[arm]
        boot = None
        if counts and arm != "baseline" and counts.get(arm) and counts.get("baseline"):
            boot = bootstrap_deltas(counts["baseline"], counts[arm], n_boot=n_boot)
        ev = _evidence([r["miou"] for r in base], [r["miou"] for r in runs], boot["miou"] if boot else None)
        row["delta"] = row["miou"] - rows["baseline"]["miou"]
        row["delta_per_class"] = {c: row["per_class"][c] - rows["baseline"]["per_class"][c] for c in class_names}
        if arm == "baseline":
            continue
        row["evidence"] = ev
        row["class_evidence"] = {}
        for k, c in enumerate(class_names):
            b_vals, a_vals = [r["per_class"].get(c) for r in base], [r["per_class"].get(c) for r in runs]
            cev = _evidence(b_vals, a_vals, boot["class"][k] if boot else None)
            cev["unresolved"] = unresolved.get(c)
            cev["neither_learns"] = _never_learned(b_vals + a_vals)
            row["class_evidence"][c] = cev
    return rows


# comparisons that isolate one part of the pipeline: (reference, arm, what differs)
HEAD_TO_HEAD = (("oracle", "recon", "renderer only: the same label maps, pix2pixHD instead of the painter"),
                ("recon", "recon-filter", "training only: the same pairs, noisy generated pixels ignored"))


def head_to_head(results: dict[str, list[dict]], class_names: list[str], counts: dict[str, list] | None,
                 resolv: list | None = None, n_boot: int = 1000) -> list[dict]:
    """Paired evidence of arm - reference for the HEAD_TO_HEAD pairs present: what one change alone does."""
    from segbalance.core.experiments.evidence import bootstrap_deltas

    unresolved = {r.name: r.reason for r in resolv or []}
    out = []
    for ref, arm, what in HEAD_TO_HEAD:
        if ref not in results or arm not in results:
            continue
        boot = (bootstrap_deltas(counts[ref], counts[arm], n_boot=n_boot)
                if counts and counts.get(ref) and counts.get(arm) else None)
        ev = _evidence([r["miou"] for r in results[ref]], [r["miou"] for r in results[arm]],
                       boot["miou"] if boot else None)
        per_class = {}
        for k, c in enumerate(class_names):
            r_vals = [r["per_class"].get(c) for r in results[ref]]
            a_vals = [r["per_class"].get(c) for r in results[arm]]
            cev = _evidence(r_vals, a_vals, boot["class"][k] if boot else None)
            cev["unresolved"] = unresolved.get(c)
            cev["neither_learns"] = _never_learned(r_vals + a_vals)
            per_class[c] = cev
        out.append({"reference": ref, "arm": arm, "differs": what, "evidence": ev, "class_evidence": per_class})
    return out


def head_to_head_table(comparisons: list[dict], rare: list[str], split: str = "val") -> str:
    """Markdown: each head-to-head comparison's Δ mIoU and rare-class Δ IoU with intervals and words."""
    if not comparisons:
        return ""
    resolved = [c for c in rare if not comparisons[0]["class_evidence"][c].get("unresolved")]
    head = ["arm − reference", "what differs", f"Δ mIoU [seeds] [{split} images]"] + [f"{c} Δ IoU" for c in resolved]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cmp in comparisons:
        def cell(ev: dict, nd: int) -> str:
            if ev.get("neither_learns"):
                return "neither learns it (IoU 0 in every run)"
            return f"{_signed(ev['delta'], nd)} {_span(ev['seeds'], nd)} {_span(ev['images'], nd)} {ev['word']}"

        lines.append("| " + " | ".join([f"{cmp['arm']} − {cmp['reference']}", cmp["differs"],
                                        cell(cmp["evidence"], 2)]
                                       + [cell(cmp["class_evidence"][c], 1) for c in resolved]) + " |")
    return ("\nHead to head: one change at a time, paired by seed (the same intervals and words as above; "
            "rare classes the protocol resolves).\n\n" + "\n".join(lines) + "\n")


def _fmt(v: float | None, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{nd}f}"


def _signed(v: float | None, nd: int = 2) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:+.{nd}f}"


def _span(iv: list[float] | None, nd: int = 2) -> str:
    return "–" if iv is None else f"[{iv[0]:+.{nd}f}, {iv[1]:+.{nd}f}]"


def markdown_table(rows: dict[str, dict], rare: list[str], resolv: list | None = None, split: str = "val") -> str:
    """The arms table (pairs, generator score, mIoU and its paired delta) and the rare-class table."""
    head = ["arm", "pairs", "gen score", "mIoU (mean ± std)", "Δ mIoU", "95% over seeds", f"95% over {split} images",
            "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    real = rows.get("baseline", {}).get("miou")
    notes = []
    for arm, r in rows.items():
        ev = r.get("evidence") or {}
        pairs = "–" if r.get("pairs") is None else f"{r['pairs']:.0f}" + ("*" if r.get("pairs_note") else "")
        if r.get("pairs_note"):
            notes.append(f"- {arm}*: {r['pairs_note']}")
        if r.get("ignored_per_seed"):
            shown = ", ".join(_fmt(v, 1) for v in r["ignored_per_seed"])
            notes.append(f"- {arm}: trains on {PAIR_SOURCE.get(arm, arm)}'s pairs with the noisy-pixel filter "
                         f"(x{NOISY_ARMS.get(arm, 0):g}); generated pixels ignored per seed (%): {shown}")
        score = r.get("gen_score")
        score_txt = "–" if score is None else (f"{score:.1f}" + (f" ({score / real * 100:.0f}% of real)"
                                                                   if real else ""))
        vs = r.get("gen_vs_oracle")
        if vs:
            score_txt += f"; {vs['mean'] * 100:.0f}% [{vs['lo'] * 100:.0f}, {vs['hi'] * 100:.0f}] of oracle"
        lines.append("| " + " | ".join([
            arm, pairs, score_txt, f"{_fmt(r['miou'])} ± {_fmt(r['miou_std'])}",
            _signed(ev.get("delta")) if arm != "baseline" else "–", _span(ev.get("seeds")),
            _span(ev.get("images")), ev.get("word", "–") if arm != "baseline" else "–"]) + " |")
    out = "\n".join(lines) + "\n"
    if notes:
        out += "\n" + "\n".join(notes) + "\n"
    arms = [a for a in rows if a != "baseline" and rows[a].get("class_evidence")]
    if rare and arms:
        info = {x.name: x for x in resolv or []}
        head = ["class", f"{split} images", "median width (px)", "baseline IoU"] + [f"{a} Δ IoU" for a in arms]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for c in rare:
            x = info.get(c)
            cells = [c, str(x.val_images) if x else "–", _fmt(x.median_width, 1) if x else "–",
                     _fmt(rows["baseline"]["per_class"].get(c), 1)]
            for a in arms:
                ev = rows[a]["class_evidence"][c]
                if ev.get("unresolved"):
                    cells.append(f"not resolved: {ev['unresolved']}")
                elif ev.get("neither_learns"):  # 0 against 0 is no evidence of "no effect": say what happened
                    cells.append("neither arm learns it (IoU 0 in every run)")
                else:
                    cells.append(f"{_signed(ev['delta'], 1)} {_span(ev['seeds'], 1)} {_span(ev['images'], 1)} "
                                 f"{ev['word']}")
            lines.append("| " + " | ".join(cells) + " |")
        out += (f"\nRare classes: Δ IoU vs baseline, then its 95% interval over seeds and over {split} images, "
                "then the word both intervals earn.\n\n" + "\n".join(lines) + "\n")
    return out
