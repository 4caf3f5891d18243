"""Tests of the one status protocol (astrobayes._status)."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from astrobayes._status import Severity, Status, UnreliableResultError, by_severity, check, worst


class _Fit(Status):
    OK = (Severity.OK, "fit converged")
    SLOW = (Severity.WARNING, "warning: fit hit max_iterations")
    DIVERGED = (Severity.FAILURE, "failure: the loss became non-finite")


class _Other(Status):
    FINE = (Severity.OK, "fine")
    BROKEN = (Severity.FAILURE, "failure: broken")


class _Result(NamedTuple):
    value: float
    status: Status


def test_members_carry_severity_and_message():
    assert _Fit.SLOW.value == _Fit.SLOW.message == "warning: fit hit max_iterations"
    assert _Fit.SLOW.severity is Severity.WARNING
    assert (_Fit.OK.is_ok, _Fit.OK.is_warning, _Fit.OK.is_failure) == (True, False, False)
    assert (_Fit.SLOW.is_ok, _Fit.SLOW.is_warning, _Fit.SLOW.is_failure) == (False, True, False)
    assert _Fit.DIVERGED.is_failure
    assert not _Fit.DIVERGED.is_warning

    # severity is data, not parsed from the text
    class _Odd(Status):
        QUIET = (Severity.FAILURE, "all fine, really")

    assert _Odd.QUIET.is_failure
    assert _Fit("fit converged") is _Fit.OK


def test_worst_and_by_severity_across_enums():
    assert worst([_Fit.OK, _Fit.SLOW, _Fit.OK]) is _Fit.SLOW
    assert worst([_Fit.SLOW, _Other.BROKEN, _Fit.DIVERGED]) is _Other.BROKEN  # first of ties
    assert by_severity([_Fit.OK, _Fit.DIVERGED, _Fit.SLOW, _Fit.DIVERGED]) == (
        _Fit.DIVERGED,
        _Fit.SLOW,
        _Fit.OK,
    )


def test_worst_and_by_severity_validate_input():
    with pytest.raises(ValueError, match="at least one status"):
        worst([])
    with pytest.raises(TypeError, match="Status members; got str"):
        worst(["ok"])


def test_message_must_be_text():
    with pytest.raises(TypeError, match="non-empty string"):

        class _Bad(Status):
            X = (Severity.OK, "")


def test_check_returns_or_raises_with_the_partial_result():
    ok = _Result(1.0, _Fit.SLOW)
    assert check(ok, throw=True) is ok  # a warning never raises
    bad = _Result(2.0, _Fit.DIVERGED)
    assert check(bad, throw=False) is bad
    with pytest.raises(UnreliableResultError, match="_Fit.DIVERGED: failure: the loss") as info:
        check(bad, throw=True)
    assert info.value.result is bad
    assert info.value.status is _Fit.DIVERGED


def test_check_uses_the_given_error_class_and_rejects_results_without_status():
    class _MyError(UnreliableResultError):
        pass

    with pytest.raises(_MyError, match="my run: failure"):
        check(_Result(0.0, _Other.BROKEN), True, error=_MyError, message="my run")
    with pytest.raises(TypeError, match="must carry a Status in .status; got str"):
        check(_Result(0.0, "ok"), True)
