"""`indextts-dist serve`: a registered pattern model behind an OpenAI-compatible speech endpoint.

One process holds ONE loaded model (`inference.loaded.LoadedModel`, the object behind every other
door) and decodes the text segments of concurrent requests together. The pieces, each with one job:

- `audio`    — waveform -> wav / flac / pcm / mp3 bytes, whole or streamed per segment;
- `request`  — the JSON body of `POST /v1/audio/speech` -> a checked request, or a one-line 4xx;
- `metrics`  — the Prometheus series `/metrics` shows;
- `batcher`  — the bounded queue and the worker that batches segments across requests;
- `holder`   — the model being served, and the alias follower that swaps in a new version;
- `app`      — the FastAPI routes; `runner` — uvicorn with the SIGTERM drain.
"""
