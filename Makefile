# astrobayes developer commands. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: demo test test-x64 test-all bench lint clean venv figures

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[plots,io,imaging,sphere,physics,interpret,probabilistic,scale,dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/astrobayes demo --out astrobayes-demo

figures: $(STAMP)
	$(PY) scripts/render_figures.py --out astrobayes-figures

# --dist loadfile: each test file runs on one worker, so its module fixtures (trained
# estimators, a resumed run) and the programs its tests share compile once, not on both
# workers. Measured 2026-12-06 on the 210 tests of eight files with such fixtures: 265 ->
# 210 s wall, 485 -> 386 CPU-s; on the whole suite, with that session's other test
# changes, 630 -> 620 s in one A/B (within this machine's run-to-run noise).
# --max-worker-restart=0: when a worker process dies (a segfault), the run stops and names
# the test it died in. With a restart, pytest-xdist 3.8's loadfile scheduler can hand the
# new worker only finished files and wait forever (pytest-xdist issues #784, #1378): the
# slow suite hung that way after each of three XLA-compile segfaults on 2026-12-06.
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile --max-worker-restart=0 -q

# The fast suite again in a float64 session (JAX_ENABLE_X64=1, as many cosmology codes
# run): every public function must work there too. The first such runs (2026-12-06)
# found library bugs the float32 suite could not: the unrolled network's reader, surrogate
# roll-outs, the NUFFT adjoint, R-hat of blown-up chains, the imaging likelihood's
# constant at tiny sigma. CI runs it after `make test`.
test-x64: $(STAMP)
	JAX_ENABLE_X64=1 $(PY) -m pytest -n 2 --dist loadfile --max-worker-restart=0 -q

test-all: $(STAMP)
	ASTROBAYES_TEST_XLA_OPTIMIZE=1 $(PY) -m pytest -n 2 --dist loadfile --max-worker-restart=0 -q -m "slow or not slow"

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) -m pip install --quiet -e ".[bench-torch]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

clean:
	rm -rf $(VENV) astrobayes-demo astrobayes-figures .pytest_cache
