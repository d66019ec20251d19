"""Verbatim transcripts with speaking-pattern markers: faster-whisper words + speech timing from the audio.

Decoding choices, and why:
- ``word_timestamps=True``: markers sit at word boundaries.
- a disfluent ``initial_prompt``: Whisper writes fluent text unless the context shows disfluencies;
  with the prompt, tiny.en keeps more "uh"/"um"/"hmm" and repetitions.
- ``condition_on_previous_text=False`` and ONE temperature (0.0): a disfluent prompt makes the
  compression-ratio / log-prob checks fail more often, and the default fallback then re-decodes the
  clip at up to five temperatures (slow, and sampled text is worse for a verbatim transcript).
- invented text (the prompt's trailing "Thank you.", a "see you in the next video" loop, "no, no,
  no, ..." on a word it cannot read) is removed by rules measured on three synthesizers
  (benchmarks/markers.py): words starting after the audio's last measured speech, words piled onto
  one moment (4 words in < 0.25 s), words lying in a measured silence (a FILLER there is moved
  before the silence instead: tiny.en times a real "uh" into the pause after it), a word repeated
  more than 4 times or a phrase more than twice in a row (collapsed to one copy), and a stock tail
  phrase that Whisper gave a low probability.
- each clip decoded alone by default. ``transcribe_many(clips, pack=True)`` lays short clips end to
  end in windows of up to 28 s (``packing``) and decodes the windows in batches through
  faster-whisper's ``BatchedInferencePipeline``: 2.6-5x faster on 2 cores (10-20x real time for
  tiny.en), but the decoder then keeps fewer fillers and repetitions (benchmarks/markers.py prints
  both paths), so it is the opt-in ``--asr-pack`` of preprocess. The batched pipeline on one clip
  per window is no faster than sequential decoding (the encoder still reads 30 s per clip).
- no ``vad_filter``: removing silences before decoding makes the pauses invisible to the decoder
  and shifts its timestamps; pauses are measured separately instead (``speech_segments``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..pattern_markers import LONG_PAUSE_S, PATTERN_MARKERS, PAUSE_S
from .fillers import confirmed_filler, filler_candidates, merge_fillers, sound_stretches
from .levels import frame_db, quiet_frames
from .markers import (
    Word,
    drop_after_speech,
    drop_hallucinated_tail,
    drop_looped_phrases,
    drop_packed_words,
    drop_words_in_silence,
    find_pauses,
    mark_transcript,
    relabel_lookalike_fillers,
)
from .packing import WINDOW_S, pack_windows, split_words
from .short_decode import decode_short
from .whisper import load_whisper

__all__ = ["DISFLUENT_PROMPT", "SAMPLE_RATE", "Transcriber", "Transcript", "speech_segments"]

SAMPLE_RATE = 16000
DISFLUENT_PROMPT = "Um, well, uh, I I think, hmm, you know..."
"""Measured on the espeak benchmark corpus with tiny.en: without a prompt it writes almost no fillers
(recall 0.07); this prompt gives the best precision/recall of the variants tried (longer ones, or
ones naming "er" and "ah", make it write "er" everywhere; ending on a full stop loses fillers)."""


@dataclass
class Transcript:
    """``text``: verbatim with markers ("" when nothing was said); ``words``: the ASR words kept;
    ``marker_counts``: every PATTERN_MARKERS key; ``speech_end_s``: end of the last measured speech."""

    text: str
    words: list[Word] = field(default_factory=list)
    marker_counts: dict[str, int] = field(default_factory=dict)
    speech_end_s: float = 0.0
    speech: list[tuple[float, float]] = field(default_factory=list)


def _vad_segments(samples: np.ndarray, sample_rate: int, min_silence_s: float, threshold: float):
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(
        threshold=threshold,
        min_speech_duration_ms=0,
        min_silence_duration_ms=round(min_silence_s * 1000),
        speech_pad_ms=0,
    )
    stamps = get_speech_timestamps(np.asarray(samples, np.float32), opts, sampling_rate=sample_rate)
    return [(s["start"] / sample_rate, s["end"] / sample_rate) for s in stamps]


def speech_segments(
    samples: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    *,
    min_silence_s: float = 0.1,
    threshold: float = 0.5,
    floor_margin_db: float = 12.0,
    min_energy_db: float = -50.0,
) -> list[tuple[float, float]]:
    """Speech [start, end) in seconds: faster-whisper's bundled Silero VAD, edges refined by energy.

    Silero (ONNX, CPU) decides WHERE there is speech, robustly to noise; no padding
    (``speech_pad_ms=0``), which would shorten every measured pause by twice the pad. Its 32 ms
    windows and hysteresis end a segment early on a fading vowel, so a silence measures up to
    ~0.1 s long; each silence between segments is therefore shrunk to the frames that are really
    quiet (10 ms frames below max(``min_energy_db``, noise floor + ``floor_margin_db``), the noise
    floor being the clip's 10th-percentile frame level). Energy never creates a silence the VAD did
    not find, so noisy audio falls back to the VAD alone; but a VAD silence holding sound between
    two quiet stretches (a soft filler the VAD missed) becomes two silences with that sound as a
    speech segment between them, so it neither hides the filler nor gives one pause too long.
    Quiet stretches shorter than ``min_silence_s`` do not split segments (they are never pauses).
    """
    if samples.size == 0:
        return []
    segs = _vad_segments(samples, sample_rate, min_silence_s, threshold)
    if len(segs) < 2:
        return segs
    hop = round(0.01 * sample_rate)
    db = frame_db(samples, hop)
    quiet = quiet_frames(db, floor_margin_db, min_energy_db)
    min_frames = max(1, round(min_silence_s * 100))
    out: list[list[float]] = [[segs[0][0], segs[0][1]]]
    for (_, e0), (s1, e1) in itertools.pairwise(segs):
        f0, f1 = int(e0 * 100), min(len(db), int(np.ceil(s1 * 100)))
        # the quiet runs inside the VAD silence; sound between them (a soft filler the VAD did not
        # call speech) is speech, so one VAD silence may be two silences around it
        runs = _runs(quiet[f0:f1])
        runs = [(a + f0, b + f0) for a, b in runs if b - a >= min_frames]
        if not runs:  # no quiet stretch at all: the VAD silence was not one
            out[-1][1] = e1
            continue
        out[-1][1] = max(e0, runs[0][0] / 100)
        for (_, b), (a, _) in itertools.pairwise(runs):
            out.append([b / 100, a / 100])
        out.append([min(s1, runs[-1][1] / 100), e1])
    return [(float(a), float(b)) for a, b in out if b > a]


def _cut(samples: np.ndarray, start: float, end: float, pad_s: float) -> np.ndarray:
    """Samples of [start - pad, end + pad) seconds, clipped to the clip."""
    return samples[max(0, round((start - pad_s) * SAMPLE_RATE)) : round((end + pad_s) * SAMPLE_RATE)]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where ``mask`` is true."""
    if mask.size == 0:
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


class Transcriber:
    """``Transcriber().transcribe(samples_16k)`` → ``Transcript``. Load once, reuse for many clips.

    ``model``: None (bundled tiny.en), a CTranslate2 directory, a faster-whisper model name, or an
    already loaded ``faster_whisper.WhisperModel`` (to share one between users).
    ``language``: a Whisper language code; None = what the model implies (``en`` for an English-only
    ``*.en`` model, detected per clip for a multilingual one).
    ``acoustic_fillers``: look again, on the audio, for the fillers Whisper dropped (``fillers``;
    English only); False keeps Whisper's words (``benchmarks/markers.py --no-acoustic-fillers``).
    """

    def __init__(
        self,
        model=None,
        initial_prompt: str | None = DISFLUENT_PROMPT,
        language: str | None = None,
        pause_s: float = PAUSE_S,
        long_pause_s: float = LONG_PAUSE_S,
        *,
        cpu_threads: int = 0,
        beam_size: int = 5,
        pack_s: float = WINDOW_S,
        batch_size: int = 8,
        acoustic_fillers: bool = True,
    ) -> None:
        if model is None or isinstance(model, (str, Path)):
            model = load_whisper(None if model is None else str(model), cpu_threads=cpu_threads)
        self.model = model
        self.initial_prompt = initial_prompt
        english_only = not getattr(getattr(model, "model", None), "is_multilingual", True)
        if english_only and language not in (None, "en"):
            # faster-whisper would silently decode English instead: a transcript in the wrong language
            raise InputError(
                f"--language {language}: the Whisper model is English-only (a *.en model such as the "
                "bundled tiny.en); pass a multilingual --whisper-model (e.g. large-v3 or its local folder)"
            )
        self.language = "en" if english_only else language
        self.pause_s = pause_s
        self.long_pause_s = long_pause_s
        self.beam_size = beam_size
        self.pack_s = pack_s
        self.batch_size = batch_size
        self.acoustic_fillers = acoustic_fillers
        self._pipeline = None

    @staticmethod
    def max_new_tokens(duration_s: float) -> int:
        """A budget far above real speech (~5 tokens/s with punctuation) that still cuts a runaway
        "see you in the next video, see you in the next video, ..." loop before 448 tokens."""
        return int(min(200, 16 + 10 * duration_s))

    def _options(self, duration_s: float) -> dict:
        return dict(
            language=self.language,
            beam_size=self.beam_size,
            temperature=0.0,
            condition_on_previous_text=False,
            initial_prompt=self.initial_prompt,
            word_timestamps=True,
            vad_filter=False,
            max_new_tokens=self.max_new_tokens(min(duration_s, 30.0)),
        )

    def _words(self, segments) -> list[Word]:
        return [
            Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))
            for seg in segments
            for w in (seg.words or ())
            if w.word.strip()
        ]

    def asr_words(self, samples_16k: np.ndarray) -> list[Word]:
        """Whisper's words for one clip alone, unfiltered."""
        return self.asr_words_many([samples_16k])[0]

    def asr_words_many(self, clips: Sequence[np.ndarray], *, pack: bool = False) -> list[list[Word]]:
        """Whisper's words per clip, unfiltered. ``pack``: short clips share windows of up to
        ``pack_s`` seconds (``packing``), decoded ``batch_size`` windows at a time; else each clip
        alone, sequentially (the default: it keeps more fillers, see the module docstring)."""
        durations = [len(c) / SAMPLE_RATE for c in clips]
        windows = pack_windows(durations, self.pack_s if pack else 0.0)
        audios = [w.audio(clips, SAMPLE_RATE) for w in windows]
        if pack:
            per_window = self._batched_words(audios)
        else:
            per_window = [
                self._words(
                    self.model.transcribe(a, without_timestamps=False, **self._options(len(a) / SAMPLE_RATE))[
                        0
                    ]
                )
                for a in audios
            ]
        out: list[list[Word]] = [[] for _ in clips]
        for window, words in zip(windows, per_window, strict=True):
            for i, mine in zip(window.members, split_words(window, words), strict=True):
                out[i] = mine
        return out

    def _batched_words(self, audios: list[np.ndarray]) -> list[list[Word]]:
        """Every window at once through ``BatchedInferencePipeline``: the windows laid end to end in
        one signal, each a ``clip_timestamps`` entry of at most 30 s (no VAD cut: the pauses stay
        visible to the decoder), so their encoder and decoder passes run as batches."""
        if self._pipeline is None:
            from faster_whisper import BatchedInferencePipeline

            self._pipeline = BatchedInferencePipeline(self.model)
        spans: list[dict[str, float]] = []
        t = 0.0
        for a in audios:
            d = len(a) / SAMPLE_RATE
            spans += [{"start": s, "end": min(t + d, s + 30.0)} for s in np.arange(t, t + d, 30.0).tolist()]
            t += d
        signal = np.concatenate(audios) if audios else np.zeros(0, np.float32)
        longest = max((s["end"] - s["start"] for s in spans), default=0.0)
        segments, _ = self._pipeline.transcribe(
            signal, clip_timestamps=spans, without_timestamps=True, batch_size=self.batch_size,
            **self._options(longest),
        )  # fmt: skip
        words = self._words(segments)
        out: list[list[Word]] = []
        t = 0.0
        for a in audios:  # back to each window's own time
            d = len(a) / SAMPLE_RATE
            mine = [w for w in words if t <= (w.start + w.end) / 2 < t + d]
            out.append([Word(w.text, w.start - t, w.end - t, w.probability) for w in mine])
            t += d
        return out

    def transcribe(self, samples_16k: np.ndarray) -> Transcript:
        """One clip, decoded alone."""
        return self.transcribe_many([samples_16k])[0]

    def transcribe_many(self, clips: Sequence[np.ndarray], *, pack: bool = False) -> list[Transcript]:
        """Clips (16 kHz) → one ``Transcript`` each. ``pack``: they share Whisper windows, in the order
        given (each transcript then depends on its neighbours, so the caller fixes the group)."""
        speech = [speech_segments(c) for c in clips]
        heard = [i for i, s in enumerate(speech) if s]  # no speech: no ASR, an empty transcript
        words = dict(zip(heard, self.asr_words_many([clips[i] for i in heard], pack=pack), strict=True))
        kept = [self._guarded(words.get(i, []), s) for i, s in enumerate(speech)]
        if self.acoustic_fillers and self.language == "en":  # the fillers it knows are English spellings
            kept = self._with_heard_fillers(clips, speech, kept)
        return [self._marked(w, s) for w, s in zip(kept, speech, strict=True)]

    def _with_heard_fillers(
        self, clips: Sequence[np.ndarray], speech: list[list[tuple[float, float]]], kept: list[list[Word]]
    ) -> list[list[Word]]:
        """Each clip's words plus the fillers Whisper dropped (``fillers``): every candidate stretch
        is cut out (±50 ms) and decoded alone (``short_decode``: on a 3 s encoder window, one cut per
        call, so no batch-dependent arithmetic can tie a transcript to the number of processes),
        and kept as a filler only if that is all it holds."""
        stretches = [sound_stretches(c, s) for c, s in zip(clips, speech, strict=True)]
        cands = [
            filler_candidates(clip, st, w) if w else []
            for clip, st, w in zip(clips, stretches, kept, strict=True)
        ]
        cuts = [_cut(clips[i], s, e, 0.05) for i, cs in enumerate(cands) for s, e in cs]
        decoded = iter(
            decode_short(
                self.model,
                cuts,
                language=self.language,
                initial_prompt=self.initial_prompt,
                beam_size=self.beam_size,
                batch_size=1,  # each cut alone: its text cannot depend on which clips a rank holds
            )
        )
        out = []
        for words, cs, st in zip(kept, cands, stretches, strict=True):
            found = [f for s, e in cs if (f := confirmed_filler(s, e, next(decoded))) is not None]
            out.append(merge_fillers(words, found, st) if found else words)
        return out

    @staticmethod
    def _guarded(words: list[Word], speech: list[tuple[float, float]]) -> list[Word]:
        """The hallucination guards on one clip's words and measured speech."""
        if not speech:
            return []
        speech_end = speech[-1][1]
        words = relabel_lookalike_fillers(drop_after_speech(words, speech_end))
        words = drop_words_in_silence(drop_packed_words(words), speech)
        return drop_hallucinated_tail(drop_looped_phrases(words))

    def _marked(self, words: list[Word], speech: list[tuple[float, float]]) -> Transcript:
        """The markers on one clip's kept words and measured speech."""
        if not speech:
            return Transcript(text="", marker_counts=dict.fromkeys(PATTERN_MARKERS, 0))
        speech_end = speech[-1][1]
        if not words:
            return Transcript("", [], dict.fromkeys(PATTERN_MARKERS, 0), speech_end, speech)
        pauses = find_pauses(words, speech, self.pause_s)
        text, counts = mark_transcript(words, pauses, self.pause_s, self.long_pause_s)
        return Transcript(
            text=text, words=words, marker_counts=counts, speech_end_s=speech_end, speech=speech
        )
