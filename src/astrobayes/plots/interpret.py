"""Figures of :mod:`astrobayes.interpret`: symbolic regression and the interpretable encoder.

The Pareto front of a symbolic regression; the encoder's latent traversals, latent–factor
MI matrix and β trade-off curve.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_beta_tradeoff", "plot_latent_traversal", "plot_mi_matrix", "plot_pareto_front"]


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


def plot_latent_traversal(model, log_radius, base, latents, *, values=None, labels=None):
    """Decoded profiles as each latent sweeps ``values`` (the others held at ``base``).

    Args:
        model: A :class:`astrobayes.interpret.ProfileVAE`.
        log_radius: Query radii ``log10 r``, shape ``(num_radii,)``.
        base: The latent vector the sweeps start from (e.g. the mean posterior mean).
        latents: Indices of the latents to sweep (one panel each).
        values: Offsets added to ``base[latent]`` (default ``-2..2`` in 5 steps).
        labels: Optional panel titles, one per latent.

    Returns:
        The matplotlib figure: one panel per latent, the profile coloured by the value.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from astrobayes.interpret import ProfileVAE, VAEConfig
        >>> vae = ProfileVAE(jax.random.key(0), 4, VAEConfig(num_latents=2, width=8))
        >>> fig = plot_latent_traversal(vae, jnp.linspace(-1, 0, 4), jnp.zeros(2), [0, 1])
        >>> len(fig.axes)
        2
    """
    import matplotlib.pyplot as plt

    from astrobayes.interpret.vae import latent_traversal

    values = np.linspace(-2.0, 2.0, 5) if values is None else np.asarray(values)
    latents = [int(i) for i in latents]
    base = np.asarray(base, dtype=np.float64)
    log_radius = np.asarray(log_radius)
    fig, axes = plt.subplots(1, len(latents), figsize=(3.4 * len(latents), 3.2), squeeze=False)
    colours = plt.cm.viridis(np.linspace(0.0, 1.0, len(values)))
    for panel, index in zip(axes[0], latents, strict=True):
        curves = np.asarray(latent_traversal(model, base, index, base[index] + values, log_radius))
        for curve, value, colour in zip(curves, values, colours, strict=True):
            panel.plot(log_radius, curve, color=colour, label=f"{value:+.1f}")
        title = labels[latents.index(index)] if labels is not None else f"latent {index}"
        panel.set_title(title, fontsize=9)
        panel.set_xlabel("log10 r")
    axes[0][0].set_ylabel("decoded profile")
    axes[0][-1].legend(title="Δz", fontsize=7)
    fig.tight_layout()
    return fig


def plot_mi_matrix(result, factor_names, latent_labels=None, ax=None):
    """The latent × factor mutual-information matrix, annotated ``MI ± error``.

    Args:
        result: A :class:`astrobayes.interpret.LatentMIResult`.
        factor_names: Column labels.
        latent_labels: Row labels (default ``z0, z1, ...``).
        ax: Optional matplotlib axis.

    Returns:
        The matplotlib figure.

    Examples:
        >>> from astrobayes.interpret import LatentMIResult, LatentMIStatus
        >>> r = LatentMIResult(np.eye(2), 0.01 * np.ones((2, 2)), (0, 1), np.ones(2),
        ...                    0.0, 0.0, np.full((2, 2), "OK"), LatentMIStatus.OK)
        >>> fig = plot_mi_matrix(r, ["a", "b"])
        >>> len(fig.axes)
        2
    """
    import matplotlib.pyplot as plt

    estimate = np.asarray(result.estimate)
    error = np.asarray(result.error)
    if ax is None:
        fig, ax = plt.subplots(
            figsize=(1.6 * estimate.shape[1] + 2.0, 0.7 * estimate.shape[0] + 1.6)
        )
    else:
        fig = ax.figure
    image = ax.imshow(np.maximum(estimate, 0.0), cmap="Blues", vmin=0.0)
    fig.colorbar(image, ax=ax, label="MI [nats]")
    for i in range(estimate.shape[0]):
        for j in range(estimate.shape[1]):
            matched = result.matching[j] == i
            ax.text(j, i, f"{estimate[i, j]:.3f}\n±{error[i, j]:.3f}", ha="center", va="center",
                    fontsize=8, fontweight="bold" if matched else "normal",
                    color="white" if estimate[i, j] > 0.6 * estimate.max() else "black")  # fmt: skip
    ax.set_xticks(range(estimate.shape[1]), list(factor_names), rotation=20)
    labels = latent_labels or [f"z{i}" for i in range(estimate.shape[0])]
    ax.set_yticks(range(estimate.shape[0]), list(labels))
    ax.set_title(f"off-diagonal / diagonal = {result.off_diagonal_ratio:.3f}"
                 f" ± {result.off_diagonal_ratio_error:.3f}", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig


def plot_beta_tradeoff(betas, reconstruction_rms, off_diagonal_ratio, num_active, chosen=None):
    """Accuracy–disentanglement trade-off of a β sweep.

    Args:
        betas: The β values.
        reconstruction_rms: Held-out reconstruction rms for each β.
        off_diagonal_ratio: Off-diagonal / diagonal MI for each β (NaN when undefined).
        num_active: Number of active latents for each β.
        chosen: The β picked by the rule (marked), or ``None``.

    Returns:
        The matplotlib figure: rms against β (left axis) with the off-diagonal ratio
        (right axis), and the number of active latents annotated.

    Examples:
        >>> fig = plot_beta_tradeoff([0.1, 1.0], [0.02, 0.03], [0.3, 0.05], [5, 3], chosen=1.0)
        >>> len(fig.axes)
        2
    """
    import matplotlib.pyplot as plt

    betas = np.asarray(betas, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(betas, reconstruction_rms, "o-", color="C0", label="reconstruction rms")
    ax.set_xscale("log")
    ax.set_xticks(betas, [f"{b:g}" for b in betas])
    ax.minorticks_off()
    ax.set_xlabel("β")
    ax.set_ylabel("held-out reconstruction rms", color="C0")
    for b, r, n in zip(betas, reconstruction_rms, num_active, strict=True):
        ax.annotate(
            f"{int(n)} active", (b, r), fontsize=7, xytext=(3, 4), textcoords="offset points"
        )
    twin = ax.twinx()
    twin.plot(betas, off_diagonal_ratio, "s--", color="C1", label="off-diagonal MI ratio")
    twin.axhline(0.1, color="C1", lw=0.8, ls=":")
    twin.set_ylabel("off-diagonal / diagonal MI", color="C1")
    if chosen is not None:
        ax.axvline(chosen, color="0.5", lw=0.8, ls="--")
    fig.tight_layout()
    return fig
