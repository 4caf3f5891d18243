"""Figures of :mod:`astrobayes.interpret`: the Pareto front of a symbolic regression."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_pareto_front"]


def plot_pareto_front(result, ax=None):
    """Description length and log evidence of every fitted expression against complexity.

    Args:
        result: A :class:`astrobayes.interpret.SymbolicResult`.
        ax: Optional sequence of two matplotlib axes.

    Returns:
        The matplotlib figure: left, the description length of every expression (grey)
        and the Pareto front (the best at each complexity, labelled); right, the log
        evidence likewise.

    Examples:
        >>> from astrobayes.interpret import Equation, SymbolicResult, SymbolicStatus
        >>> e = Equation("a0*x", (2.0,), 3, -10.0, 5.0, 8.0, 1.0, 20.0, ("*", ("a",), ("x",)))
        >>> r = SymbolicResult((e,), 1, 1, 4, np.ones(3), SymbolicStatus.OK)
        >>> fig = plot_pareto_front(r)
        >>> len(fig.axes)
        2
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    else:
        axes = list(ax)
        fig = axes[0].figure
    equations = [e for e in result.equations if np.isfinite(e.description_length)]
    for panel, field, label, best in (
        (axes[0], "description_length", "description length [nats]", min),
        (axes[1], "log_evidence", "log evidence [nats]", max),
    ):
        points = [(e.complexity, getattr(e, field), e.expression) for e in equations]
        points = [p for p in points if np.isfinite(p[1])]
        if points:
            c, v, _ = zip(*points, strict=True)
            panel.scatter(c, v, s=8, color="0.7", label="all expressions")
            front = []
            for complexity in sorted(set(c)):
                candidates = [p for p in points if p[0] == complexity]
                front.append(best(candidates, key=lambda p: p[1]))
            fc, fv, fe = zip(*front, strict=True)
            panel.plot(fc, fv, "o-", color="C0", label="best at each complexity")
            for complexity, value, text in front:
                panel.annotate(text, (complexity, value), fontsize=7, rotation=20,
                               xytext=(3, 3), textcoords="offset points")  # fmt: skip
        panel.set_xlabel("complexity (nodes)")
        panel.set_ylabel(label)
        panel.legend(fontsize=8)
    fig.tight_layout()
    return fig
