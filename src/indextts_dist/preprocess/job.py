"""The preprocess job on one rank: its share of clips, unit by unit, then ONE all-reduce.

    torchrun --nproc_per_node N preprocess/run.py --audio-dir clips/ --out data/

Each rank deals itself clips by index, processes them in shard units, sums speaker latents, emotion
vectors and second-stage styles in float64 (`ConditioningSums`), and joins a single all-reduce of
them (`all_reduce_sums`: the job's one collective). Rank 0 then divides, writes
`global_conditioning.safetensors` and `speaker_embeddings.safetensors` (decoding only the reference
clip), and merges every unit's record into `rejects.jsonl`, `dataset_info.json` and
`transcripts_verbatim.csv`.

A re-run reuses a finished unit only while everything it was computed from is unchanged (models,
ASR settings, bounds, each clip's bytes and transcript: `unit_key`); each rank says in one line how
many units it reused and why the others were recomputed.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..audio import ClipRejected
from ..audio.decode import display_path
from ..conditioning import ConditioningSums, GlobalConditioning, all_reduce_sums, save_conditioning
from ..dataset import CONDITIONING_FILE, DATASET_VERSION
from ..distributed import World, init_world
from ..errors import InputError
from .clip import StageTimer, packed_transcripts, process_clip
from .components import Components, load_components
from .dataset_info import reference_clips, write_summary_files
from .listing import ListedClip, deal, list_clips
from .options import PreprocessOptions
from .shards import UnitResult, find_unit, write_unit
from .speaker import copy_reference, write_speaker_embeddings
from .transcripts import read_transcripts
from .unit_key import ClipEntry, UnitKey, reuse_line, run_settings, unit_key

__all__ = ["run_preprocess"]


def _blocks(clips: list[ListedClip], size: int) -> list[list[ListedClip]]:
    return [clips[i : i + size] for i in range(0, len(clips), size)]


def _override(table: dict[str, str], clip: ListedClip) -> str | None:
    return table.get(clip.relative, table.get(Path(clip.relative).name))


def _block_key(settings: dict, block: list[ListedClip], overrides: dict[str, str]) -> UnitKey:
    entries = [
        ClipEntry(display_path(c.relative), c.index, c.sha256, c.reject, _override(overrides, c))
        for c in block
    ]
    return unit_key(settings, entries)


def _zero_sums(comps: Components) -> ConditioningSums:
    cfg = comps.gpt.cfg
    return ConditioningSums.zeros(cfg.speaker_rows, cfg.model_dim, comps.style_dim)


def _process_block(
    block: list[ListedClip],
    comps: Components,
    opts: PreprocessOptions,
    overrides: dict[str, str],
    bar: tqdm,
    timer: StageTimer,
) -> tuple[list, list[dict], ConditioningSums]:
    samples, rejects = [], []
    sums = _zero_sums(comps)
    asr_clips = [c for c in block if _override(overrides, c) is None]
    packed = packed_transcripts(asr_clips, comps, opts, timer) if opts.asr_pack else {}
    for clip in block:
        try:
            sample = process_clip(
                clip, comps, opts, _override(overrides, clip), timer, packed.get(clip.index)
            )
        except ClipRejected as exc:
            path = display_path(clip.relative)  # relative to the audio folder, like every other record
            message = f"{path}: {exc.reason}" + (f" ({exc.detail})" if exc.detail else "")
            rejects.append(
                {
                    "index": clip.index,
                    "path": path,
                    "reason": exc.reason,
                    "message": message,
                }
            )
            tqdm.write(f"warning: rejected {message}", file=sys.stderr)
        else:
            samples.append(sample)
            sums.add(sample.spk_latents, sample.emo_vec, sample.style)
        bar.update(1)
    return samples, rejects, sums


def _rank_units(
    opts: PreprocessOptions,
    world: World,
    mine: list[ListedClip],
    comps: Components,
    overrides: dict[str, str],
    settings: dict,
) -> tuple[list[UnitResult], ConditioningSums]:
    total = _zero_sums(comps)
    units, reasons = [], []
    if any(_override(overrides, c) is None for c in mine):
        comps.transcriber_for(opts.language)  # Whisper loaded now: a wrong --language fails before any clip
    bar = tqdm(total=len(mine), desc=f"rank {world.rank}", unit="clip", position=world.rank, mininterval=1.0)
    timer = StageTimer()
    started = time.perf_counter()
    for k, block in enumerate(_blocks(mine, opts.clips_per_shard)):
        key = _block_key(settings, block, overrides)
        unit, why = find_unit(opts.out, world.rank, k, key.sources, key)
        reasons.append(why)
        if unit is None:
            samples, rejects, sums = _process_block(block, comps, opts, overrides, bar, timer)
            unit = write_unit(opts.out, world.rank, k, key.sources, samples, rejects, sums, key)
        else:
            bar.update(len(block))
        assert unit.sums is not None
        total.merge(unit.sums)
        units.append(unit)
    bar.close()
    elapsed = time.perf_counter() - started
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in timer.seconds.items()) or "all reused"
    tqdm.write(reuse_line(world.rank, reasons), file=sys.stderr)
    tqdm.write(
        f"rank {world.rank}: {len(mine)} clips in {elapsed:.1f}s "
        f"({len(mine) / max(elapsed, 1e-9):.2f} clips/s; {stages})",
        file=sys.stderr,
    )
    return units, total


def _all_units(
    opts: PreprocessOptions,
    clips: list[ListedClip],
    world_size: int,
    overrides: dict[str, str],
    settings: dict,
) -> list[UnitResult]:
    """Every rank's units as rank 0 finds them on disk, checked against the keys of THIS run."""
    units = []
    for rank in range(world_size):
        for k, block in enumerate(
            _blocks(deal(clips, rank, world_size, opts.deal_group), opts.clips_per_shard)
        ):
            key = _block_key(settings, block, overrides)
            unit, why = find_unit(opts.out, rank, k, key.sources, key)
            if unit is None:
                raise RuntimeError(
                    f"{opts.out}: unit {k} of rank {rank} is not this run's after all ranks finished ({why})"
                )
            units.append(unit)
    return units


def _source_digest(clips: list[ListedClip], units: list[UnitResult]) -> str:
    accepted = sorted(s["sha256"] for u in units for s in u.samples)
    return hashlib.sha256("\n".join(accepted).encode()).hexdigest()


def _finish(
    opts: PreprocessOptions,
    comps: Components,
    clips: list[ListedClip],
    units: list[UnitResult],
    total: ConditioningSums,
) -> dict:
    """Rank 0 after the reduction: the conditioning, the speaker embeddings, the reference clip's
    copy, then the summary files naming them (written even when no clip was accepted, for the
    rejects)."""
    summary = (opts.out, units, len(clips), comps.fingerprints, opts.preset, opts.val_fraction, opts.seed,
               opts.audio_dir)  # fmt: skip
    asr = {"whisper_model": opts.whisper_model, "language": opts.language}
    extra = {"asr": asr, "text": comps.text_language(), "code_rate": comps.codec.cfg.code_rate}
    if total.count == 0:
        write_summary_files(*summary, **extra)
        raise InputError(f"{opts.audio_dir}: no clip was accepted ({len(clips)} rejected; see rejects.jsonl)")
    metadata = {
        "preset": opts.preset,
        "base_model_fingerprint": comps.fingerprints["gpt"],
        "features_fingerprint": comps.fingerprints["features"],
        "source_digest": _source_digest(clips, units),
        "dataset_version": DATASET_VERSION,
    }
    cond = GlobalConditioning.from_sums(total, metadata)
    save_conditioning(cond, opts.out / CONDITIONING_FILE)
    reference = opts.audio_dir / reference_clips([s for u in units for s in u.samples])[0]
    speaker = write_speaker_embeddings(
        opts.out, comps.second_stage, total, cond, reference, comps.fingerprints["speaker_style"]
    )
    return write_summary_files(*summary, speaker, [copy_reference(reference, opts.out)], **extra)


def run_preprocess(opts: PreprocessOptions, world: World | None = None) -> dict | None:
    """Run this rank's part; returns dataset_info on rank 0 (None elsewhere)."""
    world = world or init_world()
    started = time.perf_counter()
    opts.out.mkdir(parents=True, exist_ok=True)
    clips = list_clips(opts.audio_dir)
    mine = deal(clips, world.rank, world.size, opts.deal_group)
    overrides = read_transcripts(opts.transcripts) if opts.transcripts else {}
    device = torch.device("cuda", world.local_rank) if torch.cuda.is_available() else torch.device("cpu")
    comps = load_components(opts.preset, opts.weights_dir, opts.whisper_model, opts.seed, opts.language)
    comps.to(device)
    settings = run_settings(opts, comps.fingerprints)
    units, sums = _rank_units(opts, world, mine, comps, overrides, settings)
    total = all_reduce_sums(sums, world)  # the one collective of the job
    if not world.is_main:
        return None
    all_units = _all_units(opts, clips, world.size, overrides, settings) if world.size > 1 else units
    info = _finish(opts, comps, clips, all_units, total)
    info["elapsed_s"] = round(time.perf_counter() - started, 2)
    return info
