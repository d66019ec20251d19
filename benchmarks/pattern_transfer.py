"""The v1-vs-v2 experiment: does ONE global conditioning bring a speaker's patterns back, where
per-clip conditioning loses them?  (mini preset: trained here on synthetic speech, not IndexTTS2
quality.)

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/pattern_transfer.py --out pattern_out/           # full
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/pattern_transfer.py --out /tmp/pt --quick        # CI

1. A fluent multi-voice corpus (espeak-ng and flite voices, known transcripts), preprocessed with
   the mini preset; a mini BASE pretrained on it (full fine-tuning, per-clip conditioning, so the
   base learns to use the conditioning); exported as a base GPT file.
2. A target speaker (a voice the base never heard) with known patterns (`corpus.speakers.HESITANT`:
   fillers at phrase starts, 0.4-1.0 s silences, repeated words), preprocessed on that base, with
   the pattern markers in the training text and (full run) without them.
3. LoRA adapters on the target: v2 (global conditioning) and v1 (per-clip conditioning, generating
   with a held-out clip's conditioning), for each text variant and seed.
4. `evaluate` on held-out plain texts: base, v1, v2 and the training data side by side, with
   bootstrap intervals; v2 also with the training mel-position convention.

Writes `OUT/pattern_transfer.json` and `OUT/pattern_transfer.md`. `--quick` (a few dozen clips, one
epoch, one variant and seed) checks the machinery, not the outcome. Everything is done through the
project's own commands and APIs (preprocess job, `launch/train.py`, `evaluate_model`); `--device`
places the evaluation (training follows what Accelerate finds: a GPU when there is one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import median

from indextts_dist.corpus.speakers import FLUENT, HESITANT, sentences, speaker_corpus
from indextts_dist.distributed import World
from indextts_dist.evaluate.evaluation import EvaluateOptions, evaluate_model
from indextts_dist.evaluate.statistics import CODE_STATISTICS
from indextts_dist.evaluate.texts import HELD_OUT_TEXTS
from indextts_dist.generate import DecodingConfig
from indextts_dist.inference.base_export import export_base
from indextts_dist.inference.loaded import LoadedModel
from indextts_dist.model import MINI_LABEL
from indextts_dist.pattern_markers import strip_markers
from indextts_dist.preprocess import PreprocessOptions
from indextts_dist.preprocess.job import run_preprocess
from indextts_dist.utils.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
BASE_VOICES = {"espeak-ng": ["en-us", "en-us+m3", "en-us+f1"], "flite": ["kal", "awb", "slt"]}
TARGET = ("espeak-ng", "en-us+f3")
"""The target speaker: a voice the base corpus does not have."""


@dataclass(frozen=True)
class Size:
    base_clips: int
    target_clips: int
    held_out_clips: int
    base_epochs: int
    adapter_epochs: int
    seeds: int
    eval_seeds: int
    texts: int
    variants: tuple[str, ...]
    max_codes: int


FULL = Size(1000, 100, 4, 8, 12, 3, 3, 10, ("markers", "plain"), 400)
QUICK = Size(12, 6, 1, 1, 1, 1, 1, 2, ("markers",), 60)
SIZE_FLAGS = ("base_clips", "target_clips", "base_epochs", "adapter_epochs", "seeds", "eval_seeds", "texts")


def log(line: str) -> None:
    print(f"[pattern_transfer {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    body = "".join(f'{name},"{text}"\n' for name, text in rows)
    atomic_write_text(path, "file,text\n" + body)
    return path


def base_corpus(out: Path, n: int) -> Path:
    """n fluent clips over the base voices, each backend its share of the sentences."""
    texts = sentences(n, seed=11)
    voices = [(b, v) for b, vs in BASE_VOICES.items() for v in vs]
    rows = []
    for k, (backend, voice) in enumerate(voices):
        mine = texts[k :: len(voices)]
        clips = speaker_corpus(
            out / "audio" / f"{backend}-{voice}",
            mine,
            backend=backend,
            voices=[voice],
            style=FLUENT,
            prefix=f"{backend}_{voice}".replace("+", "_"),
        )
        rows += [(str(c.path.relative_to(out / "audio")), c.expected) for c in clips]
    return write_csv(out / "transcripts.csv", rows)


def stage_done(stamp: Path, params: object) -> bool:
    """True when this stage already finished with exactly these parameters (a re-run picks up there)."""
    return stamp.is_file() and stamp.read_text() == json.dumps(params, sort_keys=True, default=str)


def mark_done(stamp: Path, params: object) -> None:
    atomic_write_text(stamp, json.dumps(params, sort_keys=True, default=str))


def train(args: list[str], log_file: Path) -> None:
    """`launch/train.py` in its own process (one Accelerator per job); skipped when it already ran
    with the same arguments (its stamp beside the log), so an interrupted run resumes stage by stage."""
    stamp = log_file.with_suffix(".done")
    if stage_done(stamp, args):
        log(f"reusing {log_file.stem} (already trained with these arguments)")
        return
    cmd = [sys.executable, str(REPO / "launch" / "train.py"), *args]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as fh:
        res = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=dict(os.environ), check=False)
    if res.returncode != 0:
        raise SystemExit(f"training failed (exit {res.returncode}); see {log_file}")
    mark_done(stamp, args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="working folder (corpora, datasets, runs, table)")
    p.add_argument("--quick", action="store_true", help="a few dozen clips, one epoch: checks the machinery")
    p.add_argument("--device", help="evaluation device (default: cuda if available, else cpu)")
    p.add_argument("--lora-rank", type=int, default=32, help="adapter rank (the guide's 32)")
    p.add_argument("--learning-rate", type=float, default=5e-4, help="adapter learning rate")
    p.add_argument("--base-learning-rate", type=float, default=1e-3, help="base pretraining learning rate")
    for name in SIZE_FLAGS:
        p.add_argument(f"--{name.replace('_', '-')}", type=int, help=f"override the size's {name}")
    p.add_argument(
        "--from-json", action="store_true", help="only re-render OUT/pattern_transfer.md from its JSON"
    )
    args = p.parse_args(argv)
    if args.from_json:
        result = json.loads((args.out / "pattern_transfer.json").read_text())
        atomic_write_text(args.out / "pattern_transfer.md", markdown(result))
        print(markdown(result))
        return 0
    size = QUICK if args.quick else FULL
    size = replace(size, **{k: getattr(args, k) for k in SIZE_FLAGS if getattr(args, k) is not None})
    out: Path = args.out
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)

    # 1. the fluent base corpus and the mini base pretrained on it
    log(f"base corpus: {size.base_clips} fluent clips over {sum(map(len, BASE_VOICES.values()))} voices")
    csv = out / "base_corpus" / "transcripts.csv"
    if not stage_done(out / "base_corpus.done", size.base_clips):
        base_corpus(out / "base_corpus", size.base_clips)
        mark_done(out / "base_corpus.done", size.base_clips)
    run_preprocess(
        PreprocessOptions(
            audio_dir=out / "base_corpus" / "audio", out=out / "base_data", transcripts=csv, preset="mini"
        ),
        World(0, 1, 0),
    )
    log("pretraining the mini base (full fine-tuning, per-clip conditioning)")
    train(
        [
            "--data",
            str(out / "base_data"),
            "--out",
            str(out / "base_run"),
            "--preset",
            "mini",
            "--method",
            "full",
            "--conditioning",
            "per-clip",
            "--epochs",
            str(size.base_epochs),
            "--warmup-steps",
            "20",
            "--learning-rate",
            str(args.base_learning_rate),
        ],
        out / "base_run.log",
    )
    base_dir = out / "base_weights"
    export_base(out / "base_run" / "model", base_dir)

    # 2. the hesitant target speaker, on that base; a held-out clip for v1's inference
    backend, voice = TARGET
    target_texts = sentences(size.target_clips + size.held_out_clips, seed=23)
    clips = speaker_corpus(
        out / "target" / "audio",
        target_texts[: size.target_clips],
        backend=backend,
        voices=[voice],
        style=HESITANT,
        seed=5,
    )
    held = speaker_corpus(
        out / "target" / "held_out",
        target_texts[size.target_clips :],
        backend=backend,
        voices=[voice],
        style=HESITANT,
        seed=6,
    )
    datasets = {}
    for variant in size.variants:
        rows = [
            (c.path.name, c.expected if variant == "markers" else strip_markers(c.expected)) for c in clips
        ]
        data = out / f"target_data_{variant}"
        run_preprocess(
            PreprocessOptions(
                audio_dir=out / "target" / "audio",
                out=data,
                preset="mini",
                weights_dir=base_dir,
                transcripts=write_csv(out / f"target_{variant}.csv", rows),
            ),
            World(0, 1, 0),
        )
        datasets[variant] = data

    # 3. adapters: v2 (global) and v1 (per-clip), per variant and seed
    runs = {}
    for variant, data in datasets.items():
        for kind, conditioning in (("v2", "global"), ("v1", "per-clip")):
            for seed in range(size.seeds):
                name = f"{kind}-{variant}-s{seed}"
                log(f"adapter {name}")
                train(
                    [
                        "--data",
                        str(data),
                        "--out",
                        str(out / "runs" / name),
                        "--preset",
                        "mini",
                        "--weights-dir",
                        str(base_dir),
                        "--conditioning",
                        conditioning,
                        "--epochs",
                        str(size.adapter_epochs),
                        "--lora-rank",
                        str(args.lora_rank),
                        "--lora-alpha",
                        str(2 * args.lora_rank),
                        "--warmup-steps",
                        "10",
                        "--learning-rate",
                        str(args.learning_rate),
                        "--seed",
                        str(seed),
                    ],
                    out / "runs" / f"{name}.log",
                )
                runs[name] = (kind, variant, seed, out / "runs" / name / "model")

    # 4. evaluate every adapter on held-out plain texts (same decoding for all; sampling without the
    # repetition penalty, which over a semantic-code vocabulary forbids the pause code's runs)
    decoding = DecodingConfig(seed=0, num_beams=1, repetition_penalty=1.0, max_new_tokens=size.max_codes)
    texts = list(HELD_OUT_TEXTS[: size.texts])
    reference = sorted(c.path for c in held)[0]
    rows: list[dict] = []
    base_sides: dict = {}  # the base under one conditioning and decoding is generated once, not per adapter
    for name, (kind, variant, seed, package) in runs.items():
        for positions in ("official", "training") if kind == "v2" else ("official",):
            model = LoadedModel.load(package, weights_dir=base_dir, device=args.device)
            opts = EvaluateOptions(
                out=out / "evaluations" / f"{name}-{positions}",
                texts=texts,
                seeds=size.eval_seeds,
                decoding=DecodingConfig(**{**decoding.to_dict(), "mel_positions": positions}),
                reference_clip=reference if kind == "v1" else None,
                uri=str(package),
                resamples=500,
            )
            report = evaluate_model(model, opts, log=log, base_cache=base_sides)
            rows.append(
                {
                    "model": kind,
                    "variant": variant,
                    "seed": seed,
                    "mel_positions": positions,
                    "code": report["code"],
                    "sanity": report["sanity"],
                }
            )
    result = {
        "label": MINI_LABEL,
        "quick": args.quick,
        "size": size.__dict__,
        "decoding": decoding.to_dict(),
        "texts": texts,
        "reference_clip_for_v1": str(reference),
        "rows": rows,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    atomic_write_text(out / "pattern_transfer.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(out / "pattern_transfer.md", markdown(result))
    print(markdown(result))
    return 0


def _cell(row: dict, key: str, side: str) -> str:
    r = row["code"].get(key) or {}
    v = r.get(side)
    ci = r.get(f"{side}_ci") if side != "transfer" else r.get("transfer_ci")
    if v is None:
        return "n/a"
    return f"{v:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _arm_cell(rows: list[dict], key: str, side: str) -> str:
    """Median over the arm's seeds, with the range when there are several."""
    values = [r["code"][key][side] for r in rows if (r["code"].get(key) or {}).get(side) is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def summary(result: dict) -> list[str]:
    """Per training-text variant, one row per arm (model × mel positions): each statistic's adapted
    value and transfer ratio, median over the adapter seeds (min–max), under the data's value and
    the base's (which depend on the variant: its dataset fixes the pause codes and the data)."""
    lines = ["### summary: adapted value / transfer ratio, median over adapter seeds (min–max)", ""]
    variants = list(dict.fromkeys(row["variant"] for row in result["rows"]))
    for variant in variants:
        arms: dict[tuple[str, str], list[dict]] = {}
        for row in result["rows"]:
            if row["variant"] == variant:
                arms.setdefault((row["model"], row["mel_positions"]), []).append(row)
        lines += [
            f"**training text with {variant}**",
            "",
            "| arm | seeds | " + " | ".join(stat.label for stat in CODE_STATISTICS) + " |",
            "|---|---|" + "---|" * len(CODE_STATISTICS),
        ]
        rows = next(iter(arms.values()))
        lines.append(
            "| training data | – | "
            + " | ".join(_arm_cell(rows, st.key, "data") for st in CODE_STATISTICS)
            + " |"
        )
        for (model, positions), rows in arms.items():
            cells = " | ".join(_arm_cell(rows, st.key, "base") for st in CODE_STATISTICS)
            lines.append(f"| base, {model}'s conditioning, {positions} positions | – | {cells} |")
        for (model, positions), rows in arms.items():
            cells = " | ".join(
                f"{_arm_cell(rows, st.key, 'adapted')} / {_arm_cell(rows, st.key, 'transfer')}"
                for st in CODE_STATISTICS
            )
            lines.append(f"| **{model}**, {positions} positions | {len(rows)} | {cells} |")
        lines.append("")
    return lines


def markdown(result: dict) -> str:
    """The summary per arm, then one table per statistic: data, base, each model's value and
    transfer ratio."""
    lines = [
        f"## pattern transfer ({'quick: machinery only' if result['quick'] else 'full run'})",
        "",
        f"**{result['label']}.** Held-out plain texts: {len(result['texts'])}; decoding: sampling, "
        f"1 beam, no repetition penalty, cap {result['decoding']['max_new_tokens']}; "
        f"v1 generates with the conditioning of a held-out clip. {result['elapsed_s']} s.",
        "",
        *summary(result),
    ]
    for stat in CODE_STATISTICS:
        lines += [
            f"### {stat.label}",
            "",
            "| model | text | seed | mel pos. | data | base | model | transfer |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in result["rows"]:
            lines.append(
                f"| {row['model']} | {row['variant']} | {row['seed']} | {row['mel_positions']} | "
                f"{_cell(row, stat.key, 'data')} | {_cell(row, stat.key, 'base')} | "
                f"{_cell(row, stat.key, 'adapted')} | {_cell(row, stat.key, 'transfer')} |"
            )
        lines.append("")
    lines += [
        "### base sanity (per evaluation)",
        "",
        "| model | seed | codes/token base÷data | stop rate | pause share base÷data |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        s = {x["statistic"]: x for x in row["sanity"]}
        fig = [s[k]["figure"] for k in ("codes_per_text_token", "stop_rate", "pause_code_share")]
        cells = " | ".join("n/a" if f is None else f"{f:.2f}" for f in fig)
        lines.append(f"| {row['model']}-{row['variant']} | {row['seed']} | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
