"""Shared fixtures: an explicit PRNG key and the path of ../shared/data."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import jax
import pytest

from astrobayes.compilation import CACHE_ENVIRONMENT_VARIABLE

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# The command line turns JAX's persistent compilation cache on by default, in the user's
# ~/.cache: without this, the first CLI test of a worker would switch it on half-way
# through the run, write every later program of that worker into the user's folder, and
# make the suite's time depend on earlier runs. Tests run with no persistent cache; the
# tests of the cache itself set their own folder. (A cache private to each run, shared by
# the workers, was measured and gave nothing: 311 s against 296 s on the sampling,
# evidence, flow and run tests.)
os.environ[CACHE_ENVIRONMENT_VARIABLE] = ""

# The fast suite is dominated by compiling many small programs once each, not by running
# them: XLA's optimisation passes are switched off for it (JAX's own
# ``jax_disable_most_optimizations``; measured on the sampling, evidence, flow and run
# tests: 314 -> 227 s wall, 601 -> 431 CPU-s, the same 117 passes). The programs compute
# the same things, but their results can differ, and not only in the last bits: the GP
# emulator's docstring example (12 points, 50 Adam steps) reaches a NaN length scale
# under these flags (finite with the optimised programs; `fit` now reports it as
# NON_FINITE), so tests of results must hold under both. ``make test-all`` sets
# ASTROBAYES_TEST_XLA_OPTIMIZE=1 and runs everything with the optimised programs users get.
if os.environ.get("ASTROBAYES_TEST_XLA_OPTIMIZE") != "1":
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"  # subprocesses of the tests
    jax.config.update("jax_disable_most_optimizations", True)
    # XLA's CPU backend emits fused loops through its MLIR "fusion emitters" by default;
    # its older elemental emitter compiles the same programs faster (one Pathfinder test
    # 25.9 -> 15.1 s; the run-resume and prior-evidence tests 69 -> 45 CPU-s). Read when
    # the CPU client starts, which no test has done yet; subprocesses inherit it.
    _flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_use_fusion_emitters" not in _flags:
        os.environ["XLA_FLAGS"] = f"{_flags} --xla_cpu_use_fusion_emitters=false".strip()


def _memory_mappings() -> int:
    """Memory mappings of this process (lines of /proc/self/maps; 0 where there is none)."""
    try:
        with open("/proc/self/maps", "rb") as maps:
            return sum(1 for _ in maps)
    except OSError:
        return 0


def _mapping_limit() -> int:
    try:
        return int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return 65530  # Linux's default


_MAPPING_LIMIT = _mapping_limit()


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """After a test file, drop JAX's compiled programs if they crowd the mapping limit.

    Every program XLA's CPU backend compiles lives in its own memory mappings (3 per small
    program, measured), and JAX's caches keep the programs of module-level functions for
    the life of the process. A slow-suite worker reached Linux's ``vm.max_map_count``
    (65530 mappings, ~21,000 live programs): the next compile's ``mmap`` failed, and XLA's
    error path died of a segmentation fault in the C++ unwinder. That was the
    slow-suite crash of 2026-12-06, in whichever test compiled next (the core file had
    65,529 mapped segments). ``jax.clear_caches()`` frees them (200 programs of three
    functions: 2463 -> 94 mappings); done only past half the limit, so files that share
    programs on one worker still share them. (jax-ml/jax#27201 is the same failure.)
    """
    yield
    if _memory_mappings() > _MAPPING_LIMIT // 2:
        jax.clear_caches()
        gc.collect()


@pytest.fixture(autouse=True)
def _x64_flag_restored():
    """Fail a test that leaves ``jax_enable_x64`` changed (and restore it).

    The flag is process-wide: ``astrobayes texture`` (and ``run`` with ``x64 = true``)
    turn it on for their process, and a test calling them in-process once left it on for
    the rest of its worker, so a later float32 test failed in ``make test-all`` only. Tests
    that need float64 take the ``global_x64`` fixture, which restores it.
    """
    before = jax.config.jax_enable_x64
    yield
    after = jax.config.jax_enable_x64
    if after != before:
        jax.config.update("jax_enable_x64", before)
        pytest.fail(
            f"the test left jax_enable_x64 = {after} (it was {before}); take the global_x64 "
            "fixture, which restores it"
        )


@pytest.fixture
def key():
    """A fresh JAX PRNG key (tests never share keys implicitly)."""
    return jax.random.key(20261122)


@pytest.fixture
def optimized_xla():
    """XLA's optimisation passes back on for one test whose time is spent running programs.

    The fast suite turns them off because most tests compile more than they run; a test
    that runs one program many times (24 EM fits of the mixture-target coverage test:
    49 -> 17 s) is faster with them. Programs first compiled in the test are optimised
    (JAX's in-memory cache does not key on the flag: a program compiled earlier in the
    worker is reused as it is, and later tests reuse these); the flag is restored
    afterwards. Use as ``@pytest.mark.usefixtures("optimized_xla")``.
    """
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)


@pytest.fixture
def strict_dtypes():
    """Strict JAX dtype promotion for a test (``pytestmark = pytest.mark.usefixtures(...)``).

    Implicit promotions (float32 with float64 arrays, ints with floats) raise instead of
    silently widening, so a module that passes under it keeps the dtypes it claims.
    """
    with jax.numpy_dtype_promotion("strict"):
        yield


@pytest.fixture
def global_x64():
    """float64 through JAX's global flag for a test, restored afterwards.

    The global flag, not the thread-local ``jax.enable_x64()`` context: JAX may run a host
    callback (the ducc0 transforms) on another thread, which does not see the context.
    """
    yield from _global_x64_flag(True)


@pytest.fixture
def global_x32():
    """float32 through JAX's global flag for a test, restored afterwards.

    For tests that reproduce a float32 record (shipped weights' held-out scores, a
    training run's outcome) also when the suite runs in a float64 session
    (``make test-x64``, ``JAX_ENABLE_X64=1``): JAX draws other random numbers in float64.
    """
    yield from _global_x64_flag(False)


def _global_x64_flag(value: bool):
    """Set ``jax_enable_x64`` to ``value`` for the body of a fixture; restore it after."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", value)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.fixture
def shared_data():
    """Path to ../shared/data; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


os.environ.setdefault("MPLBACKEND", "Agg")
