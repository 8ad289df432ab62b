"""segbalance compare RUN_A RUN_B: per-class IoU of two runs side by side, with deltas and a chart."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from segbalance.core.errors import NESTED, DataError


def load_result(path: str | Path) -> dict:
    """A run's final metrics: RUN_DIR/result.json, or a JSON file written by `evaluate --json`."""
    p = Path(path)
    f = p / "result.json" if p.is_dir() else p
    if not f.is_file():
        raise DataError("no result.json: the run has not finished (evaluate it, or resume it)" if p.is_dir()
                        else "file not found", f)
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, or bytes that are not UTF-8
        raise DataError(f"cannot read run result ({exc})", f) from None
    except RecursionError:
        raise DataError(f"cannot read run result (JSON {NESTED})", f) from None
    if not isinstance(data, dict) or not isinstance(data.get("per_class"), dict):
        raise DataError("no per-class IoU in this result (status "
                        f"{data.get('status', '?') if isinstance(data, dict) else '?'})", f)
    return data


def compare_results(a: dict, b: dict) -> dict:
    """{"classes": [{name, a, b, delta}], "miou_a", "miou_b", "miou_delta"}; deltas None where a side is absent."""
    if list(a["per_class"]) != list(b["per_class"]):
        raise DataError("the two runs were evaluated on different class lists")
    rows = []
    for name, va in a["per_class"].items():
        vb = b["per_class"][name]
        rows.append({"name": name, "a": va, "b": vb, "delta": None if va is None or vb is None else vb - va})
    ma, mb = a.get("miou"), b.get("miou")
    return {"classes": rows, "miou_a": ma, "miou_b": mb,
            "miou_delta": None if ma is None or mb is None else mb - ma}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="per-class IoU of two runs side by side, with deltas (B - A)")
    p.add_argument("run_a", metavar="RUN_A", help="baseline run folder (or evaluate --json output)")
    p.add_argument("run_b", metavar="RUN_B", help="run to compare against the baseline")
    p.add_argument("--plot", metavar="PNG", help="write a bar chart of the per-class IoU deltas")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    a, b = load_result(args.run_a), load_result(args.run_b)
    cmp = compare_results(a, b)
    if args.plot:
        from segbalance.core.plots import delta_chart

        shown = [r for r in cmp["classes"] if r["delta"] is not None]
        d = cmp["miou_delta"]
        delta_chart(args.plot, [r["name"] for r in shown], [r["delta"] * 100 for r in shown],
                    title=f"IoU change {Path(args.run_b).name} vs {Path(args.run_a).name}"
                    + (f" (mIoU {d * 100:+.2f} points)" if d is not None else ""),
                    ylabel="IoU delta (points)")
    if args.json:
        print(json.dumps(cmp))
        return 0
    pct = lambda v: "     -" if v is None else f"{v * 100:6.2f}"  # noqa: E731
    sgn = lambda v: "      -" if v is None else f"{v * 100:+7.2f}"  # noqa: E731
    print(f"A = {args.run_a}\nB = {args.run_b}")
    print(f"{'class':<16}{'A IoU%':>8}{'B IoU%':>8}{'delta':>8}")
    for r in cmp["classes"]:
        print(f"{r['name']:<16}{pct(r['a']):>8}{pct(r['b']):>8}{sgn(r['delta']):>8}")
    print(f"{'mIoU':<16}{pct(cmp['miou_a']):>8}{pct(cmp['miou_b']):>8}{sgn(cmp['miou_delta']):>8}")
    if args.plot:
        print(f"plot: {args.plot}")
    return 0
