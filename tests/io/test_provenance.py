"""``astrobayes.io.provenance``: what produced a result, checked against git and metadata."""

import importlib.metadata
import json
import shutil
import subprocess
from pathlib import Path

import jax
import pytest

import astrobayes
from astrobayes.io import software_provenance, to_json
from astrobayes.io.provenance import PROVENANCE_PACKAGES, source_commit

PACKAGE = Path(astrobayes.__file__).parent


def _git(*arguments):
    done = subprocess.run(
        ["git", "-C", str(PACKAGE), *arguments], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None


def test_versions_are_the_installed_ones_and_the_record_is_strict_json():
    record = software_provenance()
    assert record["astrobayes"] == astrobayes.__version__
    for name in PROVENANCE_PACKAGES:
        try:
            expected = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            expected = None
        assert record["packages"][name] == expected
    assert record["packages"]["jax"] == jax.__version__
    assert record["jax_backend"] == jax.default_backend()
    assert record["devices"] == [d.device_kind for d in jax.devices()]
    assert json.loads(to_json(record)) == record
    # the cached parts are copies: changing one record leaves the next intact
    record["packages"]["jax"] = "edited"
    record["source"]["commit"] = "edited"
    fresh = software_provenance()
    assert fresh["packages"]["jax"] == jax.__version__
    assert fresh["source"]["commit"] != "edited"


def test_x64_is_read_at_the_call():
    with jax.enable_x64(False):
        assert software_provenance()["x64"] is False
    with jax.enable_x64(True):
        assert software_provenance()["x64"] is True


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_commit_is_the_checkout_head_and_modified_follows_git_status():
    head = _git("rev-parse", "HEAD")
    found = source_commit()
    if head is None:  # an installed wheel, not a checkout
        assert found == {"commit": None, "modified": None}
        return
    assert found["commit"] == head
    changes = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
    assert found["modified"] is bool(changes)


def test_a_folder_outside_git_has_no_commit(tmp_path):
    # negative control: no repository, no commit (and no error)
    assert source_commit(tmp_path) == {"commit": None, "modified": None}
    assert source_commit(str(tmp_path)) == {"commit": None, "modified": None}
    with pytest.raises(TypeError, match="package_dir must be a path; got int"):
        source_commit(3)
