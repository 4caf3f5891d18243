"""Tests of astrobayes.compilation: programs per function and the run-once options."""

from __future__ import annotations

import gc
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.compilation import (
    RUN_ONCE_COMPILER_OPTIONS,
    SMALL_NETWORK_COMPILER_OPTIONS,
    TINY_NETWORK_COMPILER_OPTIONS,
    compiled_with_options,
    network_compiler_options,
    program_per_function,
)


def _build(get_fn):
    return jax.jit(jax.vmap(lambda x: get_fn()(x)))


def test_program_per_function_is_shared_while_the_function_lives_and_dropped_with_it():
    programs = weakref.WeakKeyDictionary()
    data = jnp.arange(3.0)

    def shift(x):
        return x + data[0] + 1.0

    program = program_per_function(programs, shift, _build)
    assert program_per_function(programs, shift, _build) is program
    np.testing.assert_allclose(np.asarray(program(jnp.zeros(2))), [1.0, 1.0])

    def other(x):
        return 2.0 * x

    assert program_per_function(programs, other, _build) is not program  # control
    alive = weakref.ref(shift)
    del shift, program
    gc.collect()
    assert alive() is None
    assert len(programs) == 1  # only `other`'s


class _Slotted:
    """A callable without weak references (``__slots__`` and no ``__weakref__``)."""

    __slots__ = ()

    def __call__(self, x):
        return jnp.abs(x)


def test_program_per_function_builds_per_call_for_functions_without_weak_references():
    programs = weakref.WeakKeyDictionary()
    fn = _Slotted()
    with pytest.raises(TypeError):
        weakref.ref(fn)  # the premise
    first = program_per_function(programs, fn, _build)
    assert program_per_function(programs, fn, _build) is not first
    assert len(programs) == 0
    np.testing.assert_allclose(np.asarray(first(jnp.array([-2.0, 3.0]))), [2.0, 3.0])


def test_program_per_function_rejects_bad_arguments_by_name():
    with pytest.raises(TypeError, match="programs must be a weakref.WeakKeyDictionary; got dict"):
        program_per_function({}, abs, _build)
    with pytest.raises(TypeError, match="fn must be callable; got int"):
        program_per_function(weakref.WeakKeyDictionary(), 3, _build)
    with pytest.raises(TypeError, match="build must be callable; got str"):
        program_per_function(weakref.WeakKeyDictionary(), abs, "jit")


def test_run_once_options_compile_the_same_function_to_the_same_values():
    """Unoptimised and optimised programs agree to float32 rounding; a wrong function
    does not (control)."""

    def f(x):
        return jnp.sum(jnp.tanh(x @ x.T) * jnp.exp(-x[:, :1]), axis=1)

    x = jax.random.normal(jax.random.key(0), (16, 8))
    light = np.asarray(jax.jit(f, compiler_options=RUN_ONCE_COMPILER_OPTIONS)(x))
    default = np.asarray(jax.jit(f)(x))
    np.testing.assert_allclose(light, default, rtol=1e-5, atol=1e-6)
    assert not np.allclose(light, np.asarray(jax.jit(lambda x: 1.001 * f(x))(x)), rtol=1e-5)


def _flow_like(x):
    return jnp.sum(jnp.tanh(x @ x.T) * jnp.exp(-x[:, :1]), axis=1)


def test_network_options_by_dimension_match_the_flow_training_config():
    """The flows' training epoch takes the same options as their evaluation and sampling."""
    from astrobayes.evidence.targets import RQSplineFlow

    expected = {
        1: TINY_NETWORK_COMPILER_OPTIONS,
        4: TINY_NETWORK_COMPILER_OPTIONS,
        5: SMALL_NETWORK_COMPILER_OPTIONS,
        16: SMALL_NETWORK_COMPILER_OPTIONS,
        17: {},
    }
    for dim, options in expected.items():
        assert network_compiler_options(dim) == options
        assert RQSplineFlow().training_config(dim).compiler_options() == options
    with pytest.raises(ValueError, match="dim must be positive; got 0"):
        network_compiler_options(0)
    with pytest.raises(TypeError, match="dim must be an int; got float 2.0"):
        network_compiler_options(2.0)


def test_compiled_with_options_keeps_one_program_per_options_with_equal_values():
    """Each option set gives its own program, kept; values agree to float32 rounding, and
    a wrong function does not (control)."""
    x = jax.random.normal(jax.random.key(1), (16, 8))
    programs = [compiled_with_options(_flow_like, network_compiler_options(d)) for d in (2, 8, 30)]
    assert len({id(p) for p in programs}) == 3
    assert programs[0] is compiled_with_options(_flow_like, dict(TINY_NETWORK_COMPILER_OPTIONS))
    assert programs[2] is compiled_with_options(_flow_like, None)
    values = [np.asarray(p(x)) for p in programs]
    for v in values[:2]:
        np.testing.assert_allclose(v, values[2], rtol=1e-5, atol=1e-6)
    assert not np.allclose(values[0], 1.001 * values[2], rtol=1e-5)
    with pytest.raises(TypeError, match="fn must be callable; got int"):
        compiled_with_options(3)
    with pytest.raises(TypeError, match="options must be a dict or None; got list"):
        compiled_with_options(_flow_like, [("a", 1)])
    with pytest.raises(TypeError, match="options must map option names to hashable values"):
        compiled_with_options(_flow_like, {"a": [1]})
