# The README's two commands: `make demo` and `make test`. Both set up from scratch on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test setup setup-dev system-deps lint clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# The CPU torch wheel first: anything else pulling a bare `torch` would fetch a multi-GB CUDA build.
	$(PIP) install torch==2.13.0

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) install -c constraints.txt -e .
	touch $@

$(STAMP): $(VENV)/bin/python pyproject.toml constraints.txt
	$(PIP) install -c constraints.txt -e ".[dev]"
	touch $@ $(VENV)/.installed

setup: $(VENV)/.installed
setup-dev: $(STAMP)

# Debian packages: espeak-ng (test speech), sox and ffmpeg (formats). Installed only if missing.
system-deps:
	@if ! command -v espeak-ng >/dev/null 2>&1 || ! command -v sox >/dev/null 2>&1 || ! command -v ffmpeg >/dev/null 2>&1 \
		|| ! command -v flite >/dev/null 2>&1 || ! command -v text2wave >/dev/null 2>&1 \
		|| [ ! -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ]; then \
		$(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			espeak-ng sox libsox-fmt-all ffmpeg flite festival festvox-us-slt-hts; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

demo: system-deps $(VENV)/.installed
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(VENV)/bin/indextts-dist demo --out demo_out

test: system-deps $(STAMP)
	$(VENV)/bin/ruff check .
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) demo_out .pytest_cache
