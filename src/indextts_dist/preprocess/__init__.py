"""Stage 1: clips -> transcripts, text ids, semantic codes in webdataset shards + ONE global conditioning.

The job itself is `indextts_dist.preprocess.job.run_preprocess` (imported lazily by the CLI: it pulls
in Whisper, w2v-BERT and the codec).
"""

from .options import PreprocessOptions

__all__ = ["PreprocessOptions"]
