"""The evaluation report: rows of (data, base, adapted, transfer) with intervals, the base's sanity
figures, and the same as a Markdown table.

The sanity figures answer "is the base sane enough for a comparison to mean anything?" (the
issue's first try: a base that stops after 12 codes, or repeats the pause code to the cap, makes
every transfer ratio noise): the base's codes per text token near the data's, its stop rate near
1, its pause-code share near the data's. They are reported, never hidden behind a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .statistics import AUDIO_STATISTICS, CODE_STATISTICS, Statistic, summarize

__all__ = ["SANITY", "format_markdown", "rows", "sanity"]

SANITY: tuple[tuple[str, str, float, float], ...] = (
    ("codes_per_text_token", "ratio", 2 / 3, 1.5),
    ("stop_rate", "value", 0.9, 1.0),
    ("pause_code_share", "ratio", 0.5, 2.0),
)
"""(statistic, compared as base/data "ratio" or the base's "value", low, high)."""


def rows(
    stats: Sequence[Statistic],
    adapted: Sequence[Mapping[str, float]],
    base: Sequence[Mapping[str, float]],
    data: Mapping[str, Any] | None,
    resamples: int = 1000,
) -> dict[str, dict[str, Any]]:
    """One row per statistic either side measured."""
    out = {}
    for stat in stats:
        d = (data or {}).get(stat.key) or {}
        row = summarize(adapted, base, d.get("value"), stat, resamples=resamples)
        row["data_ci"] = d.get("ci")
        if row["adapted"] is not None or row["base"] is not None:
            out[stat.key] = row
    return out


def sanity(code_rows: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The base's figures against the data's, each with its accepted range and whether it is in it."""
    out = []
    for key, kind, low, high in SANITY:
        row = code_rows.get(key) or {}
        base, data = row.get("base"), row.get("data")
        if kind == "ratio":
            figure = base / data if isinstance(base, float) and isinstance(data, float) and data else None
        else:
            figure = base
        out.append(
            {
                "statistic": key,
                "compared": kind,
                "figure": figure,
                "base": base,
                "data": data,
                "range": [low, high],
                "ok": None if figure is None else low <= figure <= high,
            }
        )
    return out


def _num(x: Any, digits: int) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _ci(ci: Any, digits: int) -> str:
    return "" if not ci else f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _table(title: str, stats: Sequence[Statistic], table: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = [f"### {title}", "", "| statistic | data | base | adapted | transfer |", "|---|---|---|---|---|"]
    for stat in stats:
        r = table.get(stat.key)
        if r is None:
            continue
        d = stat.digits
        lines.append(
            f"| {stat.label} | {_num(r['data'], d)} | {_num(r['base'], d)}{_ci(r['base_ci'], d)} | "
            f"{_num(r['adapted'], d)}{_ci(r['adapted_ci'], d)} | "
            f"{_num(r['transfer'], 2)}{_ci(r['transfer_ci'], 2)} |"
        )
    return [*lines, ""]


def format_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: what is compared, the tables, the sanity figures, the notes."""
    model = report["model"]
    d = report["decoding"]
    lines = [
        f"## evaluate: {model['uri']}",
        "",
        f"- preset `{model['preset']}`, method `{model['method']}`, conditioning `{model['conditioning']}`"
        + (
            f" (generating with the conditioning of `{model['reference_clip']}`)"
            if model.get("reference_clip")
            else ""
        )
        + (f", **{model['label']}**" if model.get("label") else ""),
        f"- {len(report['texts'])} held-out texts × seeds {report['seeds']}; "
        f"decoding: {d['num_beams']} beam(s), "
        f"sample={d['do_sample']}, top-k {d['top_k']}, top-p {d['top_p']}, temperature {d['temperature']}, "
        f"repetition penalty {d['repetition_penalty']}, cap {d['max_new_tokens']}, mel positions "
        f"`{d['mel_positions']}`",
        "- intervals: 95% bootstrap over (text, seed) units; transfer = (adapted − base) / (data − base)",
        "",
        *_table("code space", CODE_STATISTICS, report["code"]),
    ]
    if report.get("audio"):
        lines += _table("audio space", AUDIO_STATISTICS, report["audio"])
    lines += [
        "### base sanity (before any comparison means anything)",
        "",
        "| figure | base | data | accepted | in range |",
        "|---|---|---|---|---|",
    ]
    for s in report["sanity"]:
        name = f"{s['statistic']} ({'base / data' if s['compared'] == 'ratio' else 'base'})"
        ok = {None: "n/a", True: "yes", False: "**no**"}[s["ok"]]
        lines.append(
            f"| {name} | {_num(s['base'], 3)} | {_num(s['data'], 3)} | "
            f"{s['range'][0]:.2f}–{s['range'][1]:.2f} (got {_num(s['figure'], 2)}) | {ok} |"
        )
    lines.append("")
    lines += [f"- {n}" for n in report.get("notes", [])]
    return "\n".join(lines).rstrip() + "\n"
