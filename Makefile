# The two set-up commands of the README: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian libraries Qt needs offscreen on a bare machine, then those its xcb plugin needs on an X11 desktop
QT_DEBS := libglib2.0-0 libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3
QT_X11_DEBS := libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
  libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libx11-xcb1
# CPU build of torch (a local wheel on our machines); GPU users: see README "Set-up"
TORCH_SPEC ?= torch==2.13.0
WORKSPACE ?= demo-workspace

.PHONY: demo test lint install sysdeps bench gpu-check screenshots clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip >/dev/null 2>&1 || true

$(VENV)/.installed: $(BIN)/python pyproject.toml
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: sysdeps $(VENV)/.installed

sysdeps:
	@missing=""; for p in $(QT_DEBS) $(QT_X11_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Qt system libraries:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "warning: Qt needs these Debian packages:$$missing (run: sudo apt-get install$$missing)"; \
	  fi; \
	fi

demo: install
	$(BIN)/segbalance demo --workspace $(WORKSPACE)

lint: install
	$(BIN)/ruff check core db desktop_app resources packaging tests benchmarks
	$(BIN)/lint-imports

test: install lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# every CUDA path on one GPU in <= 8 minutes (benchmarks/gpu_check.py; README "GPU check"); DEVICE=cuda:1 etc.
DEVICE ?= cuda:0
gpu-check:
	@py=$(BIN)/python; [ -x $$py ] || py=$(PY); $$py benchmarks/gpu_check.py --device $(DEVICE)

screenshots: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m segbalance.desktop_app.screenshots docs/screenshots

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
