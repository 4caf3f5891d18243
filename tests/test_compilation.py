"""Tests of astrobayes.compilation: programs per function and the run-once options."""

from __future__ import annotations

import gc
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from astrobayes.compilation import RUN_ONCE_COMPILER_OPTIONS, program_per_function


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
