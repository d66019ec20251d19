"""Where each official release file lives in the user's weights folder, written once.

    weights/
      gpt.pth  bpe.model  config.yaml  wav2vec2bert_stats.pt     # IndexTeam/IndexTTS-2
      w2v-bert-2.0/                                              # facebook/w2v-bert-2.0 snapshot
      semantic_codec/model.safetensors                           # amphion/MaskGCT
      s2mel.pth  campplus_cn_common.bin                          # second stage
      bigvgan/bigvgan_generator.pt  bigvgan/config.json          # nvidia/bigvgan_v2_22khz_80band_256x

The project downloads none of them; every stage that loads one asks this layout for its path, so
the README's table and the code cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["WeightsLayout", "WeightsLayoutV25", "weights_layout"]


@dataclass(frozen=True)
class WeightsLayout:
    """Paths of the official files under `root` (nothing is checked until a stage loads one)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def gpt(self) -> Path:
        return self.root / "gpt.pth"

    @property
    def bpe(self) -> Path:
        return self.root / "bpe.model"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def w2v_bert_dir(self) -> Path:
        return self.root / "w2v-bert-2.0"

    @property
    def w2v_bert_stats(self) -> Path:
        return self.root / "wav2vec2bert_stats.pt"

    @property
    def semantic_codec(self) -> Path:
        return self.root / "semantic_codec" / "model.safetensors"

    @property
    def s2mel(self) -> Path:
        return self.root / "s2mel.pth"

    @property
    def campplus(self) -> Path:
        return self.root / "campplus_cn_common.bin"

    @property
    def bigvgan_dir(self) -> Path:
        return self.root / "bigvgan"

    @property
    def bigvgan_generator(self) -> Path:
        return self.bigvgan_dir / "bigvgan_generator.pt"


@dataclass(frozen=True)
class WeightsLayoutV25(WeightsLayout):
    """IndexTTS-2.5's folder (IndexTeam/IndexTTS-2.5): the v2 names for what the versions share
    (`gpt.pth` — the 2.5 GPT —, `wav2vec2bert_stats.pt`, `w2v-bert-2.0/`, `s2mel.pth`, CAMPPlus,
    BigVGAN), plus the 25 Hz `codec.pth` and the tiktoken vocabulary in place of `bpe.model` and
    MaskGCT's `semantic_codec/` (SPEC_2_5 §2, §4.1, §5.1).

        weights/
          gpt.pth  codec.pth  multilingual_zh_ja_yue_char_del.tiktoken  wav2vec2bert_stats.pt
          w2v-bert-2.0/  s2mel.pth  campplus_cn_common.bin  bigvgan/...
    """

    @property
    def tiktoken(self) -> Path:
        return self.root / "multilingual_zh_ja_yue_char_del.tiktoken"

    @property
    def codec(self) -> Path:
        return self.root / "codec.pth"


def weights_layout(preset: str, root: str | Path) -> WeightsLayout:
    """The layout of `root` for a preset's model version (the `-v2.5` presets read 2.5's names)."""
    return WeightsLayoutV25(Path(root)) if preset.endswith("-v2.5") else WeightsLayout(Path(root))
