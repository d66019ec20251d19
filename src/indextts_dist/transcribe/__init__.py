"""Verbatim transcripts with speaking-pattern markers ([PAUSE] [LONG] [UH] [UM] [HMM] [AH] [ER]).

``Transcriber`` runs faster-whisper (bundled tiny.en by default, offline) and measures pauses on the
audio itself; ``markers`` holds the pure functions that place the markers.
"""

from .markers import (
    FILLER_MARKERS,
    Pause,
    Word,
    drop_after_speech,
    drop_hallucinated_tail,
    drop_looped_phrases,
    drop_packed_words,
    drop_words_in_silence,
    filler_marker,
    find_pauses,
    mark_transcript,
    normalize_word,
    pause_marker,
    relabel_lookalike_fillers,
)
from .transcriber import DISFLUENT_PROMPT, SAMPLE_RATE, Transcriber, Transcript, speech_segments
from .whisper import default_device, load_whisper

__all__ = [
    "DISFLUENT_PROMPT",
    "FILLER_MARKERS",
    "SAMPLE_RATE",
    "Pause",
    "Transcriber",
    "Transcript",
    "Word",
    "default_device",
    "drop_after_speech",
    "drop_hallucinated_tail",
    "drop_looped_phrases",
    "drop_packed_words",
    "drop_words_in_silence",
    "filler_marker",
    "find_pauses",
    "load_whisper",
    "mark_transcript",
    "normalize_word",
    "pause_marker",
    "relabel_lookalike_fillers",
    "speech_segments",
]
