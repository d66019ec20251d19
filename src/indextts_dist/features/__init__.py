"""w2v-BERT 2.0 semantic features (the input of the GPT conditioning encoders and of the codec)."""

from .w2v_bert import FeatureStats, SemanticFeatures, load_stats, tiny_w2v_bert_config

__all__ = ["FeatureStats", "SemanticFeatures", "load_stats", "tiny_w2v_bert_config"]
