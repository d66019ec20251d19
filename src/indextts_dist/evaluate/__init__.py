"""`evaluate`: does the speaker's pattern come back? One instrument, three things measured by it.

The same statistics are computed on the training data (by preprocess, recorded in
`dataset_info.json` → `evaluation`), on the adapted model's output and on the base model's output
for held-out plain texts, so the three numbers of a row were measured the same way:

- `code_measures`: code space (every preset) — runs of the dataset's pause codes, tempo, stops, loops;
- `audio_measures`: audio space — the transcriber and marker detector preprocess uses, WER,
  speaker similarity;
- `statistics`: which ratio of sums each statistic is, bootstrap intervals, transfer ratios;
- `runner` / `report` / `tracking`: generating through `LoadedModel`, the table, the MLflow run.

The submodules are imported on use: preprocess needs only the two instrument modules.
"""
