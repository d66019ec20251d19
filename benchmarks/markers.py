"""Precision and recall of the transcript markers against an espeak-ng corpus with known patterns.

    .venv/bin/python benchmarks/markers.py                 # 24 clips, bundled Whisper tiny.en
    .venv/bin/python benchmarks/markers.py --clips 48 --model small.en --show

The corpus (``indextts_dist.corpus.synthesize_corpus``) places fillers and SSML breaks of known
length in its scripts, so the ground truth is exact: each break is a ``[PAUSE]`` (0.4-0.5 s) or a
``[LONG]`` (1.0-1.2 s) after a known number of words; each filler is a marker at a known word boundary.

Matching rule. Markers live at word boundaries: boundary b = after the b-th non-filler word. The
predicted words (fillers removed, lower case, no punctuation) are aligned to the script's words with
difflib, which maps each predicted boundary to a script boundary (through the nearest aligned word
on its left, else on its right), so a dropped or misheard word elsewhere does not shift the count.
A predicted marker matches an unmatched ground-truth marker of the SAME kind at the same boundary
±1 word (closest first, one-to-one). Precision = matched / predicted, recall = matched / truth.
"all fillers" pools the five filler kinds (same kind still required); "any filler" lets a filler
match a filler of another kind (did we notice a hesitation there at all).
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from indextts_dist.audio import prepare_clip
from indextts_dist.corpus import CorpusClip, synthesize_corpus
from indextts_dist.transcribe import Transcriber, filler_marker, normalize_word

PAUSES = ("[PAUSE]", "[LONG]")
FILLER_KINDS = ("[UH]", "[UM]", "[HMM]", "[AH]", "[ER]")


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
            words.append(normalize_word(tok))
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


def match(pred: list[tuple[int, str]], truth: list[tuple[int, str]], same_kind: bool = True) -> int:
    """One-to-one matches within ±1 boundary, closest first."""
    pairs = sorted(
        (abs(pb - tb), i, j)
        for i, (pb, pk) in enumerate(pred)
        for j, (tb, tk) in enumerate(truth)
        if abs(pb - tb) <= 1 and (pk == tk if same_kind else True)
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


def score(clips: Sequence[CorpusClip], texts: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """kind → (matched, predicted, truth) over all clips."""
    tally: dict[str, list[int]] = {}

    def add(kind: str, m: int, p: int, t: int) -> None:
        acc = tally.setdefault(kind, [0, 0, 0])
        acc[0] += m
        acc[1] += p
        acc[2] += t

    for clip, text in zip(clips, texts, strict=True):
        words, pred = parse_marked(text)
        bmap = boundary_map(words, clip.words)
        pred = [(bmap[b], k) for b, k in pred]
        truth = truth_markers(clip)
        for kind in PAUSES + FILLER_KINDS:
            p = [x for x in pred if x[1] == kind]
            t = [x for x in truth if x[1] == kind]
            add(kind, match(p, t), len(p), len(t))
        pf = [x for x in pred if x[1] in FILLER_KINDS]
        tf = [x for x in truth if x[1] in FILLER_KINDS]
        add("all fillers", match(pf, tf), len(pf), len(tf))
        add("any filler", match(pf, tf, same_kind=False), len(pf), len(tf))
        pp = [x for x in pred if x[1] in PAUSES]
        tp = [x for x in truth if x[1] in PAUSES]
        add("any pause", match(pp, tp, same_kind=False), len(pp), len(tp))
    return {k: (v[0], v[1], v[2]) for k, v in tally.items()}


def report(results: dict[str, tuple[int, int, int]]) -> str:
    lines = [f"{'marker':<12} {'precision':>9} {'recall':>7} {'matched':>7} {'pred':>5} {'truth':>5}"]
    for kind, (m, p, t) in results.items():
        prec = f"{m / p:.2f}" if p else "-"
        rec = f"{m / t:.2f}" if t else "-"
        lines.append(f"{kind:<12} {prec:>9} {rec:>7} {m:>7} {p:>5} {t:>5}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="Whisper model name or CTranslate2 dir (default: tiny.en)")
    ap.add_argument("--no-prompt", action="store_true", help="decode without the disfluent prompt")
    ap.add_argument("--beam-size", type=int, default=5)
    ap.add_argument("--show", action="store_true", help="print expected and predicted text per clip")
    ap.add_argument("--corpus-dir", type=Path, default=None, help="keep the corpus here")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="markers-bench-") as tmp:
        out = args.corpus_dir or Path(tmp)
        clips = synthesize_corpus(out, args.clips, args.seed, formats=("wav", "flac", "mp3", "ogg"))
        audio = [prepare_clip(c.path).samples for c in clips]  # decoded and trimmed, as the job does
    kwargs = {"beam_size": args.beam_size}
    if args.no_prompt:
        kwargs["initial_prompt"] = None
    t0 = time.perf_counter()
    tr = Transcriber(args.model, **kwargs)
    load_s = time.perf_counter() - t0
    tr.transcribe(audio[0])  # warm-up (first call initializes the VAD and CTranslate2 kernels)
    t0 = time.perf_counter()
    texts = [tr.transcribe(a).text for a in audio]
    wall = time.perf_counter() - t0
    seconds = sum(len(a) for a in audio) / 16000

    if args.show:
        for c, t in zip(clips, texts, strict=True):
            print(f"{c.path.name}  {c.voice} {c.speed} wpm\n  expected: {c.expected}\n  got:      {t}")
    results = score(clips, texts)
    print(report(results))
    kinds = Counter(k for c in clips for _, k in truth_markers(c))
    print(f"truth markers: {dict(kinds)}")
    print(
        f"{len(clips)} clips, {seconds:.1f} s of audio: {len(clips) / wall:.2f} clips/s, "
        f"{seconds / wall:.1f} audio-s/s (model load {load_s:.1f} s, {args.model or 'tiny.en (bundled)'}, "
        f"prompt {'off' if args.no_prompt else 'on'}, beam {args.beam_size})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
