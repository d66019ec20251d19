"""The dataset's second-stage speaker embeddings, finished by rank 0 after the one all-reduce.

`style` is the mean CAMPPlus style over EVERY accepted clip: each clip's style was summed with its
GPT conditioning (`clip.process_clip`) and travelled in the same collective. `ref_mel` and
`prompt_condition` come from THE reference clip (the first of `dataset_info.reference_clips`), the
one clip rank 0 decodes here. A copy of that clip goes into the dataset as well, since the packaged
model ships it: after preprocess, training needs nothing from the audio folder.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from ..conditioning import ConditioningSums, GlobalConditioning, speaker_metadata
from ..dataset import REFERENCE_DIR, SPEAKER_EMBEDDINGS_FILE
from ..speech.second_stage import SecondStage, save_speaker_embeddings
from ..utils.atomic import atomic_write_bytes

__all__ = ["copy_reference", "write_speaker_embeddings"]


def copy_reference(clip: Path, out: Path) -> str:
    """Copy `clip` to `out/reference/NAME` (atomically) and return that relative path; files an
    earlier run left there are removed, so the folder holds this run's reference only."""
    folder = out / REFERENCE_DIR
    atomic_write_bytes(folder / clip.name, clip.read_bytes())
    for old in folder.iterdir():
        if old.name != clip.name and old.is_file():
            old.unlink()
    return f"{REFERENCE_DIR}/{clip.name}"


def write_speaker_embeddings(
    out: Path,
    stage: SecondStage | None,
    sums: ConditioningSums,
    cond: GlobalConditioning,
    reference: Path,
    style_fingerprint: str,
) -> str | None:
    """Write `out/speaker_embeddings.safetensors` from the reduced `sums` and `reference`; returns
    its name, or None (and removes an earlier run's file, which would pass for this run's) when
    there is no second stage or some rank summed no styles."""
    path = out / SPEAKER_EMBEDDINGS_FILE
    style = sums.mean_style()
    if stage is None or style is None:
        if stage is not None:
            print(
                f"[preprocess] warning: only {sums.style_count} of {sums.count} clips have a speaker "
                "style (a rank without second-stage weights?); no speaker embeddings",
                file=sys.stderr,
            )
        path.unlink(missing_ok=True)
        return None
    # ref_mel / prompt_condition of the reference; its own style is replaced by the mean over all clips.
    emb = replace(stage.speaker_embeddings([], reference=reference), style=style.float())
    save_speaker_embeddings(emb, path, speaker_metadata(cond, style_fingerprint, reference.name))
    return SPEAKER_EMBEDDINGS_FILE
