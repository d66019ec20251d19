"""From codes + GPT latents (2.5: codes alone) to a wav with the package's speaker embeddings.

Segments are rendered one by one and joined with 200 ms of silence, as the official pipeline does.
The tiny preset's second stage is seeded random weights like its GPT: it makes noise, not speech.
S2Mel, BigVGAN, the codec and the speaker embeddings run on the GPT's placement (one `--device` and
`--dtype` for the whole model); the waveform comes back as float32 numpy.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from ..model import RANDOM_PRESETS, preset
from ..placement import Placement, host_numpy, resolve_placement
from ..speech.second_stage import OUTPUT_SAMPLE_RATE, SecondStage, load_speaker_embeddings
from ..tracking.package import SPEAKER_EMBEDDINGS_FILE, PackageError
from ..utils.atomic import atomic_write_bytes
from .results import Synthesis

__all__ = ["SEGMENT_GAP_S", "SpeechRenderer"]

SEGMENT_GAP_S = 0.2


class SpeechRenderer:
    """The second stage for one package: loaded once, renders any number of texts."""

    def __init__(
        self,
        package_dir: Path,
        manifest: dict,
        weights_dir: Path | None = None,
        placement: Placement | None = None,
    ) -> None:
        placement = placement or resolve_placement()
        path = Path(package_dir) / SPEAKER_EMBEDDINGS_FILE
        if not manifest.get("speaker_embeddings") or not path.is_file():
            raise PackageError(
                f"{package_dir}: no {SPEAKER_EMBEDDINGS_FILE} in this package; use --codes-only"
            )
        if manifest["preset"] in RANDOM_PRESETS:  # seeded random second stage: noise, not speech
            p = manifest["preset"]
            self.stage = SecondStage.tiny(int(manifest.get("seed", 0)), preset(p).model_dim, p)
        else:
            if weights_dir is None:
                raise PackageError("the official second stage needs --weights-dir (or $INDEXTTS_WEIGHTS_DIR)")
            self.stage = SecondStage.official(weights_dir, manifest["preset"])
        self.stage.to(placement.device, placement.dtype)
        self.embeddings = load_speaker_embeddings(path).to(placement.device, placement.dtype)
        self.placement = placement

    def render(self, result: Synthesis, seed: int = 0, speed: float = 1.0) -> np.ndarray:
        """float32 waveform at 22.05 kHz: segments joined with 200 ms of silence. `speed` ≠ 1 gives
        the same codes fewer (faster) or more (slower) mel frames, pauses included."""
        v25 = self.stage.is_v25  # 2.5's S2Mel takes codec.decode(codes), no GPT latents
        if result.latents is None and not v25:
            raise ValueError("the second stage needs the GPT latents: run the model with latents=True")
        gap = np.zeros(int(SEGMENT_GAP_S * OUTPUT_SAMPLE_RATE), dtype=np.float32)
        pieces, start = [], 0
        for n in result.segment_codes:
            codes = result.codes[start : start + n]
            latents = None if v25 or result.latents is None else result.latents[start : start + n]
            start += n
            if n == 0:
                continue
            wav = self.stage.synthesize(codes, latents, self.embeddings, seed=seed, speed=speed)
            pieces.extend([host_numpy(wav), gap])
        return np.concatenate(pieces[:-1]) if pieces else np.zeros(0, dtype=np.float32)

    @staticmethod
    def write(path: Path, wav: np.ndarray) -> Path:
        buf = io.BytesIO()
        sf.write(buf, wav, OUTPUT_SAMPLE_RATE, format="WAV", subtype="PCM_16")
        return atomic_write_bytes(path, buf.getvalue())
