"""The second stage (S2Mel + CAMPPlus + BigVGAN)."""
