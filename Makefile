# Two commands for a fresh clone: `make demo` (set up, then a 10-minute plugin run on Fashion-MNIST) and `make test`;
# `make test-all` (CI) adds the slow end-to-end tests.
PYTHON ?= python3
TORCH  ?= torch==2.13.0
VENV   := .venv
PY     := $(VENV)/bin/python
TEST_WORKERS ?= 2
UPSTREAM_URL := https://github.com/NVlabs/stylegan2-ada-pytorch.git

.PHONY: setup demo test test-all

setup: $(VENV)/.installed
	@git submodule update --init stylegan2_ada || { \
	  echo "error: could not fetch the stylegan2_ada submodule from $(UPSTREAM_URL)." >&2; \
	  echo "Offline? Point git at a local mirror of it (see README.md, 'Offline machines'):" >&2; \
	  echo "  git config --global url.<MIRROR>.insteadOf $(UPSTREAM_URL)" >&2; \
	  echo "  git config --global protocol.file.allow always" >&2; exit 1; }
	$(PY) patches/tool.py apply
	@# The project and the patched upstream importable by the venv's Python from anywhere, with no path edits,
	@# and the project's entry points (pyproject.toml) installed.
	$(PY) -c "import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()['purelib'], 'stylegan2_ada_plugins.pth').write_text('$(CURDIR)\n$(CURDIR)/stylegan2_ada\n')"
	$(PY) -m pip install --quiet --no-deps --editable .

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

demo: setup
	$(PY) scripts/demo.py

# Two pytest workers, one thread each: the tests are mostly single-threaded CPU training runs. `make test` leaves
# out the tests marked slow (conftest.py says which); `make test-all` runs them too.
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope

test: setup
	$(PYTEST) -m 'not slow' tests

test-all: setup
	$(PYTEST) tests
