"""`diagnose`'s report as plain-text tables: what a person reads in a terminal or a CI log.

The JSON report (`--json`) holds everything; the tables keep what decides the next step: one row
per layer of update norms (a zero shows as `0 (!)`), the two checks, the base vs adapted numbers
with their deltas, and the problems last, since they say what to fix first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .code_stats import STAT_KEYS

__all__ = ["format_table"]


def format_table(report: Mapping[str, Any]) -> str:
    """The report as aligned plain-text tables, problems last (what to fix first)."""
    model = report["model"]
    lines = [
        f"package  {report['package']}  (preset {model['preset']}, base {_short(model['base_fingerprint'])})"
    ]
    if model.get("label"):
        lines.append(f"note     {model['label']}")
    lines += ["", *_adapter_lines(report["adapter"]), "", *_conditioning_lines(report["conditioning"])]
    lines += _dataset_lines(report["dataset"])
    lines += ["", *_stats_lines(report["statistics"]), ""]
    problems = report["problems"]
    lines.append(f"problems ({len(problems)})" if problems else "problems: none found")
    lines += [f"  - {p}" for p in problems]
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value[:12]}…" if isinstance(value, str) and len(value) > 12 else str(value)


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _norm(value: float) -> str:
    return "0 (!)" if value == 0 else f"{value:#.4g}"


def _adapter_lines(adapter: Mapping[str, Any]) -> list[str]:
    if "error" in adapter:
        return [f"adapter  {adapter['error']}"]
    cfg = adapter["config"]
    modules = adapter["modules"]
    head = (
        f"adapter  rank {cfg.get('r')}, alpha {cfg.get('lora_alpha')}, {len(modules)} LoRA modules, "
        f"total ‖scale·B·A‖ {adapter['total_norm']:.4g}"
    )
    if not modules:
        return [head]
    kinds = list(dict.fromkeys(m["kind"] for m in modules if m["layer"] is not None))
    grid: dict[str, dict[str, str]] = {}
    for m in modules:
        row = str(m["layer"]) if m["layer"] is not None else m["module"]
        grid.setdefault(row, {})[m["kind"] if m["layer"] is not None else "total"] = _norm(m["norm_delta"])
    rows = [["layer", *kinds, "total"]]
    for row, cells in grid.items():
        total = cells.get("total") or _norm(adapter["by_layer"][row])
        rows.append([row, *(cells.get(k, "-") for k in kinds), total])
    return [head, "  per-layer ‖scale·B·A‖ (Frobenius):", *_columns(rows)]


def _conditioning_lines(cond: Mapping[str, Any]) -> list[str]:
    if cond["matches"] is None:
        sha = "unknown (not recorded)" if cond["sha256"] else "file missing"
    else:
        sha = "matches the one trained with" if cond["matches"] else "DIFFERS from the one trained with"
    base = {None: "unrecorded", True: "matches", False: "DIFFERS"}[cond["base_matches"]]
    return [
        f"conditioning  sha256 {_short(cond['sha256'])}: {sha}",
        f"              base fingerprint {_short(cond['base_model_fingerprint'])} vs adapter base "
        f"{_short(cond['base_fingerprint'])}: {base}",
    ]


def _dataset_lines(dataset: Mapping[str, Any]) -> list[str]:
    verdict = "built with global conditioning" if dataset["ok"] else "NOT built with global conditioning"
    pause = dataset.get("pause_codes")
    extra = f", {len(pause)} pause codes" if pause else ", no pause codes recorded"
    return [f"dataset       version {dataset['version']!r}: {verdict}{extra}"]


def _stat(value: Any, signed: bool = False) -> str:
    if not isinstance(value, int | float):
        return str(value)
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _stats_lines(stats: Mapping[str, Any]) -> list[str]:
    if "skipped" in stats:
        return [f"base vs adapted  skipped: {stats['skipped']}"]
    d = stats["decoding"]
    beams = d["num_beams"]
    if beams == 1:
        how = "sampling" if d["do_sample"] else "greedy"
    else:
        how = f"{beams}-beam " + ("beam-sample" if d["do_sample"] else "search")
    base, adapted, delta = stats["base"], stats["adapted"], stats["delta"]
    lines = [
        f"base vs adapted  {base['texts']} texts, seed {d['seed']}, {how}, cap {d['max_new_tokens']} codes"
    ]
    rows = [["", "base", "adapted", "delta"]]
    names = {"codes_per_text_token": "codes per text token", "stop_rate": "stop rate"}
    for key in STAT_KEYS:
        name = names.get(key, "pause-code share")
        rows.append([name, _stat(base[key]), _stat(adapted[key]), _stat(delta[key], signed=True)])
    lines += _columns(rows)
    rows = [["text", "tokens", "base codes", "adapted codes"]]
    for b, a in zip(base["per_text"], adapted["per_text"], strict=True):
        text = b["text"] if len(b["text"]) <= 40 else b["text"][:39] + "…"
        mark = {True: "", False: " (cap)"}
        rows.append(
            [
                text,
                str(b["text_tokens"]),
                f"{b['codes']}{mark[b['stopped']]}",
                f"{a['codes']}{mark[a['stopped']]}",
            ]
        )
    return [*lines, "", *_columns(rows)]
