# syntax=docker/dockerfile:1
# indextts-dist: preprocess / train / infer image for GPUs (see k8s/ and README "Run on Kubernetes").
#
#   docker build -t REGISTRY/indextts-dist:0.1.0 \
#       --build-arg TORCH_VERSION=2.13.0 --build-arg TORCH_CUDA=cu128 --build-arg CUDA_VERSION=12.8.1 .
#
# No model weights are baked in: mount the official IndexTTS2 / w2v-BERT / codec files at /weights
# (--weights-dir /weights) and a cache volume at /cache. HF_HUB_OFFLINE=1 by default: nothing is
# fetched from a hub at run time unless the user overrides it (-e HF_HUB_OFFLINE=0).

# ---- versions (override with --build-arg) -------------------------------------------------------
ARG CUDA_VERSION=12.8.1
ARG UBUNTU_VERSION=22.04
ARG PYTHON_VERSION=3.11.13
ARG UV_VERSION=0.8.22
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu128
ARG PACKAGE_VERSION=0.1.0
ARG PSYCOPG2_VERSION=2.9.13

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---- builder: a standalone CPython, the wheel, and a virtualenv with every dependency -----------
FROM ubuntu:${UBUNTU_VERSION} AS builder
ARG PYTHON_VERSION
ARG TORCH_VERSION
ARG TORCH_CUDA
ARG PACKAGE_VERSION
ARG PSYCOPG2_VERSION
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Compilers live here only: a dependency published as an sdist builds in this stage.
# Distribution package versions follow the pinned base image's release (no per-package pins).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates build-essential git \
    && rm -rf /var/lib/apt/lists/*
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1
RUN uv python install "${PYTHON_VERSION}" \
    && uv venv --python "${PYTHON_VERSION}" /opt/venv
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
RUN uv build --wheel --out-dir /wheels . \
    && test -f "/wheels/indextts_dist-${PACKAGE_VERSION}-py3-none-any.whl"

# torch first, from the PyTorch index for this CUDA; DeepSpeed's sdist imports torch while it builds.
RUN uv pip install --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" "torch==${TORCH_VERSION}" \
    && uv pip install setuptools wheel
# The package itself: NON-editable, from the wheel; psycopg2 for the PostgreSQL MLflow backend.
RUN uv pip install --no-build-isolation-package deepspeed \
        --constraint constraints.txt \
        --extra-index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" \
        --index-strategy unsafe-best-match \
        "/wheels/indextts_dist-${PACKAGE_VERSION}-py3-none-any.whl" \
        "psycopg2-binary==${PSYCOPG2_VERSION}" \
    && python -c "import torch, indextts_dist; assert torch.__version__.startswith('${TORCH_VERSION}')"

# ---- runtime: CUDA + cuDNN runtime libraries, no compilers, no weights --------------------------
FROM nvidia/cuda:${CUDA_VERSION}-cudnn-runtime-ubuntu${UBUNTU_VERSION} AS runtime
ARG PACKAGE_VERSION
ARG TORCH_VERSION
ARG TORCH_CUDA
LABEL org.opencontainers.image.title="indextts-dist" \
      org.opencontainers.image.version="${PACKAGE_VERSION}" \
      org.opencontainers.image.description="IndexTTS2 speaking-pattern LoRA: preprocess, train, infer" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.indextts.torch="${TORCH_VERSION}+${TORCH_CUDA}"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Runtime libraries only: espeak-ng (text front end tests / phonemes), ffmpeg + libsndfile (decode).
# Their versions follow the pinned base image's release, as in the builder stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates espeak-ng ffmpeg libsndfile1 libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 1000 indextts \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/indextts --shell /bin/bash indextts \
    && mkdir -p /weights /cache /data /runs \
    && chown indextts:indextts /cache /data /runs

COPY --from=builder /opt/python /opt/python
COPY --from=builder /opt/venv /opt/venv

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/cache/huggingface \
    INDEXTTS_DIST_CACHE=/cache/indextts_dist \
    INDEXTTS_WEIGHTS_DIR=/weights

# numeric, so that Kubernetes' runAsNonRoot can verify it (user 'indextts')
USER 1000:1000
WORKDIR /home/indextts
VOLUME ["/weights", "/cache"]
ENTRYPOINT ["indextts-dist"]
CMD ["--help"]
