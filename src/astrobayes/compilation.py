"""JAX's persistent compilation cache: compile a program once, reuse it in later processes.

NUTS warm-up, the evidence flow's training and evaluation, and the model set-up are
compiled XLA programs; in a fresh process JAX compiles them again, which dominates the
time of small comparisons. With the persistent cache on, a compiled program is written
to disk the first time and read back by every later process that builds the same program
(same shapes, dtypes, JAX version and backend). The command line turns it on by default
(``--no-compile-cache`` to turn it off); library users call
:func:`enable_compilation_cache` once, before their first computation. This module only
sets JAX options; JAX reads and writes the cache files. It also holds
:data:`RUN_ONCE_COMPILER_OPTIONS`, with which the library compiles programs that run once
per process (a flow's initial weights, NUTS's initial states) more cheaply.

References:
    JAX documentation, "Persistent compilation cache"
    (https://docs.jax.dev/en/latest/persistent_compilation_cache.html).
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

__all__ = [
    "CACHE_ENVIRONMENT_VARIABLE",
    "RUN_ONCE_COMPILER_OPTIONS",
    "SMALL_NETWORK_COMPILER_OPTIONS",
    "SMALL_NETWORK_MAX_DIM",
    "TINY_NETWORK_COMPILER_OPTIONS",
    "TINY_NETWORK_MAX_DIM",
    "compiled_with_options",
    "default_cache_directory",
    "enable_compilation_cache",
    "network_compiler_options",
    "program_per_function",
]

RUN_ONCE_COMPILER_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}
"""XLA options for programs that run once per process (``jax.jit(..., compiler_options=)``).

Building a flow's initial weights or a sampler's initial states runs a compiled program
once, on little data; XLA's backend optimisation then costs more than it saves. These
are the two options of JAX's ``jax_disable_most_optimizations`` switch, applied to one
program instead of the whole process (the result can differ from the optimised
program's in the last bits, as between any two compilers). A flow's
initial weights at d = 4: 6.0 -> 2.5 CPU-s to compile (2026-12-05, this project's CPU
machine). Programs that run many times (NUTS steps, training epochs) keep the defaults.
The options are part of the program's persistent-cache key.
"""

SMALL_NETWORK_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
"""XLA options for the programs of small networks that run many times: the evidence flows.

XLA's CPU backend emits fused loops through its MLIR "fusion emitters" by default; this
selects its older elemental emitter, which compiles a small flow's training epoch,
evaluation and sampling faster, at the same run time. Measured 2026-12-05 on this
project's 2-core CPU machine, the learned harmonic mean on exact draws (8 x 1500), with
no persistent cache, first call (compilation included): d = 4 22.1 -> 18.9 CPU-s with
the three programs set (18.3 with the whole process set); with the training epoch alone
set, d = 2 17.96 -> 15.72 and d = 10 28.1 -> 25.0. A second call (compiled) moved by
+-0.1 CPU-s. At d = 30 (training epoch set) it gained nothing (37.9 -> 38.5 CPU-s,
second call 12.2 -> 13.0), so it is used up to :data:`SMALL_NETWORK_MAX_DIM`
dimensions. Only the CPU backend reads it; it is part of the persistent-cache key.
"""

SMALL_NETWORK_MAX_DIM = 16
"""Largest dimension whose evidence-flow programs take :data:`SMALL_NETWORK_COMPILER_OPTIONS`."""

TINY_NETWORK_COMPILER_OPTIONS = {
    **SMALL_NETWORK_COMPILER_OPTIONS,
    "xla_backend_optimization_level": 1,
}
"""XLA options for the evidence flows of at most :data:`TINY_NETWORK_MAX_DIM` dimensions.

The elemental emitter of :data:`SMALL_NETWORK_COMPILER_OPTIONS`, with LLVM's
optimisation level 1 instead of XLA's default (3). Measured 2026-12-05 on this project's
2-core CPU machine, the learned harmonic mean on exact draws (8 x 1500), no persistent
cache, CPU-s of the first call (compilation included) / of a second call (compiled):
d = 2 12.3 -> 11.6 / 0.96 -> 0.84; d = 4 16.75 -> 13.7-14.1 / 1.43-1.56 -> 1.37 (two
runs each). From d = 6 the compiled programs run slower at level 1 (second call d = 6
2.61 -> 3.09, d = 8 2.85 -> 3.81, d = 16 5.4-6.0 -> 7.5), which a warm persistent cache
would pay on every run, hence the limit. The ln z moved by float32 rounding only (1e-8).
"""

TINY_NETWORK_MAX_DIM = 4
"""Largest dimension whose evidence-flow programs take :data:`TINY_NETWORK_COMPILER_OPTIONS`."""

CACHE_ENVIRONMENT_VARIABLE = "ASTROBAYES_JAX_CACHE"
"""Environment variable: the cache folder (an empty value turns the CLI's cache off)."""


def default_cache_directory() -> Path | None:
    """``$ASTROBAYES_JAX_CACHE`` if set (``None`` when empty), else ``~/.cache/astrobayes/jax``.

    Example:
        >>> default_cache_directory() is None or default_cache_directory().name != ""
        True

    """
    value = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    if value is not None:
        return Path(value).expanduser() if value else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "astrobayes" / "jax"


def enable_compilation_cache(
    directory: str | os.PathLike[str] | None = None, *, min_compile_time_secs: float = 0.0
) -> Path:
    """Turn on JAX's persistent compilation cache for this process.

    Call it before the first computation (JAX fixes its cache at the first compilation).

    Args:
        directory: Cache folder (created by JAX when missing); default
            :func:`default_cache_directory`.
        min_compile_time_secs: Only programs that took at least this long to compile are
            written (default 0: every program, so a warm process compiles nothing).

    Returns:
        The cache folder in use.

    Raises:
        ValueError: If no folder is given and ``$ASTROBAYES_JAX_CACHE`` is empty, or
            ``min_compile_time_secs`` is negative.

    Example:
        >>> import tempfile
        >>> before = jax.config.jax_compilation_cache_dir
        >>> folder = enable_compilation_cache(tempfile.mkdtemp())
        >>> jax.config.jax_compilation_cache_dir == str(folder)
        True
        >>> jax.config.update("jax_compilation_cache_dir", before)  # as it was

    """
    if directory is None:
        directory = default_cache_directory()
        if directory is None:
            raise ValueError(
                f"directory is None and ${CACHE_ENVIRONMENT_VARIABLE} is empty (cache off); "
                "pass a folder"
            )
    if not min_compile_time_secs >= 0:
        raise ValueError(f"min_compile_time_secs must be >= 0; got {min_compile_time_secs}")
    folder = Path(directory).expanduser()
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


def program_per_function(
    programs: weakref.WeakKeyDictionary,
    fn: Callable,
    build: Callable[[Callable[[], Callable]], Any],
) -> Any:
    """The program built for ``fn``, built once while ``fn`` lives and dropped with it.

    ``build`` receives a zero-argument callable that returns ``fn`` (a weak reference),
    and should not hold ``fn`` itself: a program that held it would keep its own key, and
    the function with everything it closes over (data, emulator weights), alive for the
    rest of the process. ``fn`` is alive whenever the program runs, because its caller
    holds it. A function that cannot be weakly referenced or hashed gets a program built
    for this call only.

    Args:
        programs: The cache, one per kind of program.
        fn: The function the program is built for.
        build: ``build(get_fn) -> program``, e.g. a ``jax.jit`` of a function that calls
            ``get_fn()``.

    Returns:
        The program.

    Raises:
        TypeError: If ``programs`` is not a ``weakref.WeakKeyDictionary`` or ``fn`` or
            ``build`` is not callable.

    Example:
        >>> import gc, weakref, jax, jax.numpy as jnp
        >>> programs = weakref.WeakKeyDictionary()
        >>> def build(get_fn):
        ...     return jax.jit(jax.vmap(lambda x: get_fn()(x)))
        >>> def square(x):
        ...     return x**2
        >>> program = program_per_function(programs, square, build)
        >>> program is program_per_function(programs, square, build)
        True
        >>> program(jnp.arange(3.0)).tolist()
        [0.0, 1.0, 4.0]
        >>> del square, program; _ = gc.collect()
        >>> len(programs)
        0

    """
    if not isinstance(programs, weakref.WeakKeyDictionary):
        raise TypeError(
            f"programs must be a weakref.WeakKeyDictionary; got {type(programs).__name__}"
        )
    for name, value in (("fn", fn), ("build", build)):
        if not callable(value):
            raise TypeError(f"{name} must be callable; got {type(value).__name__}")
    try:
        program = programs.get(fn)
    except TypeError:  # not weakly referenceable, or not hashable
        return build(lambda: fn)
    if program is None:
        program = programs[fn] = build(weakref.ref(fn))
    return program


def network_compiler_options(dim: int) -> dict[str, Any]:
    """XLA options of a ``dim``-dimensional evidence flow's programs (training, evaluation, sampling).

    :data:`TINY_NETWORK_COMPILER_OPTIONS` up to :data:`TINY_NETWORK_MAX_DIM` dimensions,
    :data:`SMALL_NETWORK_COMPILER_OPTIONS` up to :data:`SMALL_NETWORK_MAX_DIM`, XLA's
    defaults (``{}``) above.

    Args:
        dim: The flow's dimension (a positive integer).

    Returns:
        A new dict of options for ``jax.jit(..., compiler_options=)``.

    Raises:
        TypeError: If ``dim`` is not an integer.
        ValueError: If ``dim`` is not positive.

    Example:
        >>> network_compiler_options(2) == TINY_NETWORK_COMPILER_OPTIONS
        True
        >>> network_compiler_options(10) == SMALL_NETWORK_COMPILER_OPTIONS
        True
        >>> network_compiler_options(30)
        {}
    """
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int; got {type(dim).__name__} {dim!r}")
    if dim < 1:
        raise ValueError(f"dim must be positive; got {dim}")
    if dim <= TINY_NETWORK_MAX_DIM:
        return dict(TINY_NETWORK_COMPILER_OPTIONS)
    if dim <= SMALL_NETWORK_MAX_DIM:
        return dict(SMALL_NETWORK_COMPILER_OPTIONS)
    return {}


def compiled_with_options(fn: Callable, options: dict[str, Any] | None = None) -> Callable:
    """``equinox.filter_jit(fn, compiler_options=options)``: one program object per (fn, options).

    For module-level functions whose program is picked by options at the call (the
    evidence flows' training epoch, evaluation and sampling, by dimension): the same
    ``fn`` and options give the same jitted object, so its in-memory compilations are
    reused across calls. The object is kept for the life of the process, with ``fn``.

    Args:
        fn: The function to compile (module level: it is kept).
        options: XLA options (``None`` or ``{}``: XLA's defaults).

    Returns:
        The jitted function.

    Raises:
        TypeError: If ``fn`` is not callable or ``options`` is not a dict of hashable
            values.

    Example:
        >>> import jax.numpy as jnp
        >>> def double(x):
        ...     return 2 * x
        >>> program = compiled_with_options(double, {"xla_backend_optimization_level": 1})
        >>> program is compiled_with_options(double, {"xla_backend_optimization_level": 1})
        True
        >>> program is compiled_with_options(double)
        False
        >>> program(jnp.arange(3.0)).tolist()
        [0.0, 2.0, 4.0]
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable; got {type(fn).__name__}")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict or None; got {type(options).__name__}")
    try:
        frozen = tuple(sorted((options or {}).items()))
        hash(frozen)
    except TypeError as error:
        raise TypeError(
            f"options must map option names to hashable values; got {options!r}"
        ) from error
    return _compiled(fn, frozen)


@functools.cache
def _compiled(fn: Callable, options: tuple) -> Callable:
    import equinox as eqx

    return eqx.filter_jit(fn, compiler_options=dict(options)) if options else eqx.filter_jit(fn)
