# Two commands do all the setup on a fresh machine:
#   make book   builds the HTML book into _build/html (creates .venv first if needed)
#   make test   runs the whole suite: unit tests, nbval over every chapter, a warning-free
#               book build and the browser test of the built book; then nbval over every
#               chapter again, with the floating-point kernels of another CPU
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: book test test-other-cpu build-strict notebooks browser clean

NBVAL := $(BIN)/python -m pytest --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

# The kernels of an x86-64 CPU without AVX-512 or AMX (PyTorch's portable ATen kernels, oneDNN and
# MKL capped at AVX2), emulated on whatever CPU runs the tests: the chapters' stored outputs must
# come out the same on a CPU other than the one that executed them.
OTHER_CPU := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2

# On Linux, pip's PyTorch brings CUDA's libraries: the environment takes about 6.5 GB of disk.
# Where less is free, say so before pip runs out of space half-way.
$(STAMP): requirements.txt pyproject.toml
	@free_kb=$$(df -Pk . | awk 'NR == 2 {print $$4}'); \
	if [ "$$free_kb" -lt 7000000 ]; then \
	  echo "make: warning: $$((free_kb / 1000)) MB free on this disk; .venv needs about 6,500 MB (PyTorch and CUDA's libraries)" >&2; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# Debian's chromium for the browser test (Playwright cannot download its own browser offline).
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core fonts-wqy-microhei

book: $(STAMP)
	$(BIN)/jupyter-book build . --path-output .

build-strict: $(STAMP)
	$(BIN)/jupyter-book build . --path-output . --all -W --keep-going

test: $(STAMP) $(CHROMIUM) build-strict
	$(NBVAL)
	$(MAKE) test-other-cpu

test-other-cpu: $(STAMP)
	$(OTHER_CPU) $(NBVAL) notebooks

# Re-execute every chapter in place (after changing ddpm_core or a chapter), drop what the live
# widgets leave behind (book/strip_widget_state.py: the book must load no widget script from a
# CDN), and write their Colab editions (colab/, book/colab_edition.py), then commit both.
# `jupyter execute` is nbclient's, which the book's requirements install (nbconvert is not among them).
# DDPM_QUICK=1: the stored outputs come from the training chapter's quick mode, even on a GPU machine.
notebooks: $(STAMP)
	for nb in notebooks/*.ipynb; do \
	  DDPM_QUICK=1 $(BIN)/jupyter execute --inplace --timeout=1200 $$nb || exit 1; \
	done
	$(BIN)/python book/strip_widget_state.py
	$(BIN)/python book/colab_edition.py

clean:
	rm -rf _build
