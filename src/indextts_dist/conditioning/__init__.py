"""The global conditioning: one speaker-latent block and one emotion vector shared by every sample."""

from .store import ConditioningError, GlobalConditioning, load_conditioning, save_conditioning

__all__ = ["ConditioningError", "GlobalConditioning", "load_conditioning", "save_conditioning"]
