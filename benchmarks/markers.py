"""Marker quality and ASR speed of the default transcription path, on corpora from three synthesizers.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/markers.py            # 12 clips per synthesizer
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/markers.py --clips 24 --synth flite --show

Corpora (``indextts_dist.corpus.synth_corpus``): espeak-ng (3 voices), flite (kal, awb, rms, slt)
and festival (cmu_us_slt_arctic_hts), each clip built from separately synthesized segments joined by
silences of known length, with fillers ("uh", "um", "hmm") as segments of their own and repetitions
written into the text, so the ground truth is exact. The clips go through ``prepare_clip`` (decode
and trim, as the job does), then ``Transcriber().transcribe``.

Matching rule. Markers live at word boundaries: boundary b = after the b-th non-filler word. The
predicted words (fillers removed, lower case, no punctuation) are aligned to the script's words with
difflib, which maps each predicted boundary to a script boundary (through the nearest aligned word
on its left, else on its right), so a dropped or misheard word elsewhere does not shift the count.
Pauses must sit at EXACTLY the right boundary ("pause boundary": any pause kind; "[PAUSE]"/"[LONG]":
the same kind too); fillers may be one word off (same kind for "[UH]" etc. and "all fillers", any
kind for "any filler"); a repetition is a boundary between two equal words, matched exactly.
One-to-one matches, closest first. Precision = matched / predicted, recall = matched / truth.
"halluc. words/clip" counts predicted words the alignment cannot place (insertions, and the excess
of a longer replacement) per clip; "RTF" is audio seconds per wall second of ``transcribe`` (2 cores
when run with OMP_NUM_THREADS=2, as CI does).
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from statistics import median

from indextts_dist.audio import prepare_clip
from indextts_dist.corpus import BACKENDS, CorpusClip, available_backends, synth_corpus
from indextts_dist.pattern_markers import FILLER_KINDS, LONG, PAUSE
from indextts_dist.transcribe import Transcriber, filler_marker, normalize_word

PAUSES = (PAUSE, LONG)
REPEAT = "repeat"


def parse_marked(text: str) -> tuple[list[str], list[tuple[int, str]]]:
    """Marked text → (normalized non-filler words, [(boundary, marker)])."""
    words: list[str] = []
    markers: list[tuple[int, str]] = []
    for tok in text.split():
        if tok.startswith("[") and tok.endswith("]"):
            markers.append((len(words), tok))
        elif filler_marker(tok) is not None:
            markers.append((len(words), filler_marker(tok) or ""))
        elif normalize_word(tok):
            words.extend(w for w in normalize_word(tok).split("-") if w)
    return words, markers


def boundary_map(pred_words: Sequence[str], true_words: Sequence[str]) -> list[int]:
    """For each predicted boundary 0..len(pred), the script boundary it corresponds to."""
    sm = difflib.SequenceMatcher(a=list(pred_words), b=list(true_words), autojunk=False)
    word_map: dict[int, int] = {}
    for a, b, n in sm.get_matching_blocks():
        for k in range(n):
            word_map[a + k] = b + k
    out = []
    for p in range(len(pred_words) + 1):
        left = next((i for i in range(p - 1, -1, -1) if i in word_map), None)
        right = next((i for i in range(p, len(pred_words)) if i in word_map), None)
        if left is not None:
            b = word_map[left] + 1 + (p - 1 - left)
            out.append(b if right is None else min(b, word_map[right]))
        elif right is not None:
            out.append(max(0, word_map[right] - (right - p)))
        else:
            out.append(min(p, len(true_words)))
    return out


def inserted_words(pred_words: Sequence[str], true_words: Sequence[str]) -> int:
    """Predicted words the alignment cannot place: insertions, and the excess of longer replacements."""
    sm = difflib.SequenceMatcher(a=list(pred_words), b=list(true_words), autojunk=False)
    n = 0
    for op, a0, a1, b0, b1 in sm.get_opcodes():
        if op == "delete":  # in a, not in b: words the transcript has and the script does not
            n += a1 - a0
        elif op == "replace":
            n += max(0, (a1 - a0) - (b1 - b0))
    return n


def repetitions(words: Sequence[str]) -> list[tuple[int, str]]:
    """Boundaries between two equal words ("the the" → the boundary after the first)."""
    return [(i + 1, REPEAT) for i, (a, b) in enumerate(itertools.pairwise(words)) if a == b]


def match(pred: list[tuple[int, str]], truth: list[tuple[int, str]], tol: int, same_kind: bool = True) -> int:
    """One-to-one matches within ±tol boundaries, closest first."""
    pairs = sorted(
        (abs(pb - tb), i, j)
        for i, (pb, pk) in enumerate(pred)
        for j, (tb, tk) in enumerate(truth)
        if abs(pb - tb) <= tol and (pk == tk if same_kind else True)
    )
    used_p: set[int] = set()
    used_t: set[int] = set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_p)


def truth_markers(clip: CorpusClip) -> list[tuple[int, str]]:
    return [(p.boundary, p.marker) for p in clip.pauses] + list(clip.fillers)


def score(clips: Sequence[CorpusClip], texts: Sequence[str]) -> tuple[dict[str, tuple[int, int, int]], int]:
    """(kind → (matched, predicted, truth) over all clips, hallucinated words in all clips)."""
    tally: dict[str, list[int]] = {}
    halluc = 0

    def add(kind: str, pred: list, truth: list, tol: int, same_kind: bool = True) -> None:
        acc = tally.setdefault(kind, [0, 0, 0])
        acc[0] += match(pred, truth, tol, same_kind)
        acc[1] += len(pred)
        acc[2] += len(truth)

    for clip, text in zip(clips, texts, strict=True):
        words, pred = parse_marked(text)
        halluc += inserted_words(words, clip.words)
        bmap = boundary_map(words, clip.words)
        pred = [(bmap[b], k) for b, k in pred]
        truth = truth_markers(clip)
        pp, tp = [x for x in pred if x[1] in PAUSES], [x for x in truth if x[1] in PAUSES]
        add("pause boundary", pp, tp, 0, same_kind=False)
        for kind in PAUSES:
            add(kind, [x for x in pred if x[1] == kind], [x for x in truth if x[1] == kind], 0)
        pf, tf = [x for x in pred if x[1] in FILLER_KINDS], [x for x in truth if x[1] in FILLER_KINDS]
        add("all fillers", pf, tf, 1)
        add("any filler", pf, tf, 1, same_kind=False)
        for kind in sorted({k for _, k in tf}):
            add(kind, [x for x in pf if x[1] == kind], [x for x in tf if x[1] == kind], 1)
        pr = [(bmap[b], k) for b, k in repetitions(words)]
        add("repetition", pr, repetitions(clip.words), 0)
    return {k: (v[0], v[1], v[2]) for k, v in tally.items()}, halluc


def report(rows: dict[str, dict]) -> str:
    """One table: a row per synthesizer, decoding path and marker kind."""
    lines = [
        f"{'synth':<10} {'path':<9} {'marker':<15} {'P':>5} {'R':>5} {'match':>5} {'pred':>5} {'truth':>5}"
    ]
    for (synth, path), row in rows.items():
        for kind, (m, p, t) in row["results"].items():
            prec = f"{m / p:.2f}" if p else "-"
            rec = f"{m / t:.2f}" if t else "-"
            lines.append(f"{synth:<10} {path:<9} {kind:<15} {prec:>5} {rec:>5} {m:>5} {p:>5} {t:>5}")
        rtf = row["rtf"]
        lines.append(
            f"{synth:<10} {path:<9} {'halluc. words/clip':<27} {row['halluc'] / row['clips']:.2f}   "
            f"RTF {median(rtf):.1f}x real time (min {min(rtf):.1f}, max {max(rtf):.1f}; "
            f"{row['clips']} clips, {row['seconds']:.0f} s)"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=12, help="clips per synthesizer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synth", action="append", choices=sorted(BACKENDS), help="default: every installed one")
    ap.add_argument("--model", default=None, help="Whisper model name or CTranslate2 dir (default: tiny.en)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per path, interleaved")
    ap.add_argument("--show", action="store_true", help="print expected and predicted text per clip")
    ap.add_argument("--corpus-dir", type=Path, default=None, help="keep the corpora here")
    ap.add_argument(
        "--no-acoustic-fillers",
        action="store_true",
        help="Whisper's words only: no second look for the fillers it dropped (for a before/after)",
    )
    args = ap.parse_args(argv)

    synths = args.synth or available_backends()
    t0 = time.perf_counter()
    tr = Transcriber(args.model, acoustic_fillers=not args.no_acoustic_fillers)
    load_s = time.perf_counter() - t0
    paths = {"per-clip": False, "packed": True}  # the default path; preprocess --asr-pack
    rows: dict[tuple[str, str], dict] = {}
    ratios: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="markers-bench-") as tmp:
        for name in synths:
            out = (args.corpus_dir or Path(tmp)) / name
            clips = synth_corpus(out, name, args.clips, args.seed)
            audio = [prepare_clip(c.path).samples for c in clips]  # decoded and trimmed, as the job does
            seconds = sum(len(a) for a in audio) / 16000
            texts: dict[str, list[str]] = {}
            walls: dict[str, list[float]] = {p: [] for p in paths}
            tr.transcribe_many(audio[:2], pack=True)  # warm-up (VAD and CTranslate2 kernels)
            for _ in range(args.repeat):  # interleaved: the machine's noise hits both paths alike
                for p, pack in paths.items():
                    t0 = time.perf_counter()
                    texts[p] = [t.text for t in tr.transcribe_many(audio, pack=pack)]
                    walls[p].append(time.perf_counter() - t0)
            ratios[name] = [b / a for a, b in zip(walls["packed"], walls["per-clip"], strict=True)]
            for p in paths:
                if args.show:
                    for c, t in zip(clips, texts[p], strict=True):
                        print(f"{p} {c.path.name} {c.voice}\n  expected: {c.expected}\n  got:      {t}")
                results, halluc = score(clips, texts[p])
                rows[(name, p)] = {"results": results, "halluc": halluc, "clips": len(clips),
                                   "rtf": [seconds / w for w in walls[p]], "seconds": seconds}  # fmt: skip
    print(report(rows))
    for name, r in ratios.items():
        print(f"{name}: packed (--asr-pack) vs per-clip speed {median(r):.2f}x "
              f"(min {min(r):.2f}, max {max(r):.2f}, {len(r)} interleaved runs)")  # fmt: skip
    print(f"model {args.model or 'tiny.en (bundled)'} (load {load_s:.1f} s), seed {args.seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
