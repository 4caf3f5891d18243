"""The one status protocol of astrobayes: severity and message as data, ``throw=`` once.

Every result NamedTuple carries a ``status`` field whose type is a subclass of
:class:`Status`. A member is declared as ``NAME = (Severity.X, "message")``: its
``value`` is the message shown to the user (so ``status.value`` reads as prose) and
``severity`` is data, never parsed from the text. :func:`worst` picks the most severe of
several statuses (a comparison is as good as its worst model), :func:`by_severity` orders
them, and :func:`check` is the single place where ``throw=True`` turns a failure status
into an :class:`UnreliableResultError` that carries the partial result.

This follows diffrax's ``RESULTS`` (one enum whose members are the messages, plus a
``throw`` flag so failures survive ``vmap``) and emcee's exceptions that carry the answer.

Example:
    >>> class FitStatus(Status):
    ...     OK = (Severity.OK, "fit converged")
    ...     SLOW = (Severity.WARNING, "warning: fit hit max_iterations")
    ...     DIVERGED = (Severity.FAILURE, "failure: the loss became non-finite")
    >>> FitStatus.SLOW.is_warning, FitStatus.SLOW.value
    (True, 'warning: fit hit max_iterations')
    >>> worst([FitStatus.OK, FitStatus.DIVERGED, FitStatus.SLOW]).name
    'DIVERGED'

"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = [
    "Severity",
    "Status",
    "UnreliableResultError",
    "by_severity",
    "check",
    "worst",
]


class Severity(enum.IntEnum):
    """How far a result can be trusted: usable, usable with care, or not usable."""

    OK = 0
    WARNING = 1
    FAILURE = 2


class Status(enum.Enum):
    """Base of every result status: members are ``(Severity, message)`` pairs.

    Subclasses declare members only; ``value`` is the message, ``severity`` the
    :class:`Severity`. Two members of one enum must not share a message.
    """

    severity: Severity

    def __new__(cls, severity: Severity | int, message: str):
        """Store the message as the value and the severity as an attribute."""
        if not isinstance(message, str) or not message:
            raise TypeError(f"a status message must be a non-empty string; got {message!r}")
        member = object.__new__(cls)
        member._value_ = message
        member.severity = Severity(severity)
        return member

    @property
    def message(self) -> str:
        """The message shown to the user (same as ``value``)."""
        return self.value

    @property
    def is_ok(self) -> bool:
        """Whether the result can be used as it is."""
        return self.severity is Severity.OK

    @property
    def is_warning(self) -> bool:
        """Whether the result is usable with care."""
        return self.severity is Severity.WARNING

    @property
    def is_failure(self) -> bool:
        """Whether the result must not be used."""
        return self.severity is Severity.FAILURE


S = TypeVar("S", bound=Status)


def by_severity(statuses: Iterable[S]) -> tuple[S, ...]:
    """Distinct statuses, most severe first (ties keep their first-seen order).

    Args:
        statuses: Any iterable of :class:`Status` members (of one or several enums).

    Returns:
        A tuple without repeats, ordered failure, warning, ok.

    Example:
        >>> class S(Status):
        ...     A = (Severity.OK, "a")
        ...     B = (Severity.FAILURE, "b")
        >>> [s.name for s in by_severity([S.A, S.B, S.A])]
        ['B', 'A']

    """
    unique = tuple(dict.fromkeys(_checked(statuses)))
    return tuple(sorted(unique, key=lambda status: -status.severity))


def worst(statuses: Iterable[S]) -> S:
    """The most severe of ``statuses`` (the first of equal severity).

    Args:
        statuses: A non-empty iterable of :class:`Status` members.

    Returns:
        The most severe member.

    Raises:
        ValueError: If ``statuses`` is empty.

    """
    ordered = by_severity(statuses)
    if not ordered:
        raise ValueError("worst() needs at least one status; got none")
    return ordered[0]


def _checked(statuses: Iterable[Any]) -> list[Status]:
    items = list(statuses)
    for item in items:
        if not isinstance(item, Status):
            raise TypeError(
                f"statuses must be astrobayes Status members; got {type(item).__name__}"
            )
    return items


class UnreliableResultError(RuntimeError):
    """A runner's result has a failure status and the caller asked for ``throw=True``.

    Attributes:
        result: The full (partial) result, so nothing computed is lost.
        status: ``result.status``.

    """

    def __init__(self, result: Any, message: str | None = None):
        status = result.status
        text = message if message is not None else f"{type(status).__name__}.{status.name}"
        super().__init__(f"{text}: {status.value}")
        self.result = result
        self.status = status


R = TypeVar("R")


def check(
    result: R,
    throw: bool,
    *,
    error: type[UnreliableResultError] = UnreliableResultError,
    message: str | None = None,
) -> R:
    """Return ``result``, or raise ``error(result)`` if ``throw`` and its status is a failure.

    Args:
        result: Any object with a ``status`` attribute holding a :class:`Status`.
        throw: Whether a failure status raises.
        error: The exception class (a subclass of :class:`UnreliableResultError`).
        message: Prefix of the exception text (default ``Enum.NAME``).

    Returns:
        ``result`` unchanged.

    Raises:
        UnreliableResultError: (or ``error``) carrying ``result`` on a failure status
            when ``throw`` is true.
        TypeError: If ``result.status`` is not a :class:`Status`.

    """
    status = getattr(result, "status", None)
    if not isinstance(status, Status):
        raise TypeError(
            f"result must carry a Status in .status; got {type(status).__name__} "
            f"on {type(result).__name__}"
        )
    if throw and status.is_failure:
        raise error(result, message) if message is not None else error(result)
    return result
