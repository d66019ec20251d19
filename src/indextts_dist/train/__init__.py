"""Stage 2: LoRA on the GPT stage with the global conditioning, under Accelerate (DeepSpeed or DDP).

The job itself is `indextts_dist.train.job.run_training` (imported lazily by the CLI).
"""

from .options import OptimSettings, TrackingSettings, TrainOptions

__all__ = ["OptimSettings", "TrackingSettings", "TrainOptions"]
