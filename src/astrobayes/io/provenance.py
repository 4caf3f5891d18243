"""What produced a result: software versions, the source commit and the machine.

Every results file the command line writes (``results.json`` of ``astrobayes run`` and
``astrobayes demo``, the ``sbi``, ``image``, ``texture`` and ``symbolic`` summaries) and
every record of shipped weights written by the training scripts carries a
``"provenance"`` entry from :func:`software_provenance`, so a number can be traced to the
code and the libraries that printed it. It lives in :mod:`astrobayes.io` because it asks
``git`` and the installed packages' metadata.
"""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax

__all__ = ["PROVENANCE_PACKAGES", "software_provenance", "source_commit"]

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the astrobayes package

#: Libraries whose versions a result records (those that compute it).
PROVENANCE_PACKAGES = (
    "jax",
    "jaxlib",
    "numpy",
    "scipy",
    "equinox",
    "optax",
    "blackjax",
    "flowjax",
    "numpyro",
)


def software_provenance() -> dict[str, Any]:
    """The software and machine a result comes from, as JSON-able data.

    Returns:
        ``{"astrobayes": version, "source": source_commit(), "python": version,
        "platform": platform string, "packages": {name: version or None},
        "jax_backend": "cpu"/"gpu"/..., "devices": [device kinds], "x64": bool,
        "created_utc": ISO 8601 time}``. ``"x64"`` is JAX's ``jax_enable_x64`` at the call.

    Example:
        >>> import astrobayes
        >>> record = software_provenance()
        >>> record["astrobayes"] == astrobayes.__version__, record["packages"]["jax"] == jax.__version__
        (True, True)

    """
    static = _static_provenance()
    return {
        **static,
        "packages": dict(static["packages"]),
        "devices": list(static["devices"]),
        "source": dict(static["source"]),
        "x64": bool(jax.config.jax_enable_x64),
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


@functools.cache
def _static_provenance() -> dict[str, Any]:
    """The parts that do not change within a process (asked once)."""
    return {
        "astrobayes": _version("astrobayes"),
        "source": source_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PROVENANCE_PACKAGES},
        "jax_backend": jax.default_backend(),
        "devices": [device.device_kind for device in jax.devices()],
    }


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def source_commit(package_dir: str | Path | None = None) -> dict[str, Any]:
    """The git commit of the astrobayes source in use, when it is a git checkout.

    An installed wheel has no commit (``None``); a checkout (``pip install -e .``, as
    this project's Makefile installs it) has one, and ``"modified"`` says whether the
    package's files differ from it (uncommitted changes to tracked files).

    Args:
        package_dir: The package folder (default: the imported ``astrobayes``'s).

    Returns:
        ``{"commit": 40-hex string or None, "modified": bool or None}``.

    Raises:
        TypeError: If ``package_dir`` is not a path.

    Example:
        >>> sorted(source_commit())
        ['commit', 'modified']

    """
    if package_dir is not None and not isinstance(package_dir, (str, os.PathLike)):
        raise TypeError(f"package_dir must be a path; got {type(package_dir).__name__}")
    folder = _PACKAGE_DIR if package_dir is None else Path(package_dir)
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None or len(commit) != 40:
        return {"commit": None, "modified": None}
    changes = _git(folder, "status", "--porcelain", "--untracked-files=no", "--", ".")
    return {"commit": commit, "modified": None if changes is None else bool(changes)}


def _git(folder: Path, *arguments: str) -> str | None:
    """``git -C folder arguments`` stripped of whitespace, or ``None`` if git fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *arguments],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
