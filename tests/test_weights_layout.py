"""The official weights layout is written once (`weights_layout.py`): no other module spells a
release file name in code, and the README's layout lists the same files."""

from __future__ import annotations

import re
from pathlib import Path

from indextts_dist.weights_layout import WeightsLayout, WeightsLayoutV25

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "indextts_dist"
PROPERTIES = [name for name in dir(WeightsLayout) if isinstance(getattr(WeightsLayout, name), property)]
FILES = {name: getattr(WeightsLayout(Path("/w")), name) for name in PROPERTIES}
V25_ONLY = [n for n in dir(WeightsLayoutV25) if isinstance(getattr(WeightsLayoutV25, n), property)]
V25_FILES = {n: getattr(WeightsLayoutV25(Path("/w")), n) for n in V25_ONLY if n not in PROPERTIES}
"""IndexTTS-2.5's own names (codec.pth, the tiktoken file): spelled only in weights_layout.py too."""
RELEASE_NAMES = sorted(
    {p.name for n, p in {**FILES, **V25_FILES}.items() if not n.endswith("_dir")} | {"w2v-bert-2.0"}
)
"""File (and snapshot folder) names of the release; `bigvgan` alone also names a model part."""


def test_every_file_lies_under_the_root():
    assert len(FILES) >= 10
    assert all(path.is_relative_to("/w") for path in FILES.values())


def test_no_other_module_spells_a_release_file_name():
    literal = re.compile("|".join(rf"[\"']{re.escape(n)}[\"']" for n in RELEASE_NAMES))
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "weights_layout.py":
            continue
        lines = enumerate(path.read_text().splitlines(), 1)
        offenders += [
            f"{path.relative_to(ROOT)}:{i}: {line.strip()}" for i, line in lines if literal.search(line)
        ]
    assert not offenders, offenders


def test_the_readme_layout_lists_the_same_files():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Official weights") :]
    start = section.index("```")
    block = section[start : section.index("```", start + 3)]
    for name, path in FILES.items():
        if not name.endswith("_dir"):
            assert str(path.relative_to("/w")) in block or path.name in block, name
    v25 = readme[readme.index("## IndexTTS-2.5") :]
    v25 = v25[v25.index("weights25/\n") : v25.index("```", v25.index("weights25/\n"))]
    used_by_v25 = [*V25_FILES, "gpt", "w2v_bert_stats", "s2mel", "campplus", "bigvgan_generator"]
    layout = WeightsLayoutV25(Path("/w"))
    for name in used_by_v25:
        assert str(getattr(layout, name).relative_to("/w")) in v25, name
