"""Every example script runs to the end (tiny settings), so the examples cannot rot.

Each script under ``examples/`` with a command line is run as a user would run it
(``python examples/NAME.py ...``, in a fresh process, from a scratch folder) with the
smallest settings it accepts; the numbers are checked by the tests of the modules the
examples call, and by the docs' recorded runs. ``sbi_weak_lensing.py`` is exercised by
``tests/sbi/test_weak_lensing.py``, ``run_example/`` by ``tests/test_run.py`` and the
SBI example by ``tests/sbi/test_cli.py``. Until 2026-12-06 no test ran these scripts;
``sbi_saliency.py --num-maps 1`` failed (it drew ``num_maps - 1 = 0`` prior maps).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

#: script -> the smallest arguments (``{tmp}``: a scratch folder)
SMALL_ARGUMENTS = {
    "cosmic_shear.py": "--num-chains 2 --num-warmup 50 --num-samples 50 --check-draws 10",
    "distill_emulator.py": "--max-complexity 5 --num-fit 8 --num-starts 1 --num-iterations 20 --top 2",
    "emulate_distances.py": "--num-train 40 --num-test 10 --num-epochs 3 --output {tmp}/emu.eqx",
    "sbi_saliency.py": (
        "--num-simulations 200 --num-tests 5 --max-epochs 2 --num-maps 1 --flow-draws 8 "
        "--ig-steps 4 --out {tmp}/saliency.png"
    ),
    "sphere_lognormal_textures.py": (
        "--nside 8 --num-samples 1 --num-steps 5 --reference-realisations 2 --out {tmp}/textures"
    ),
    "sphere_power_spectrum_fit.py": "--nside 8",
}

#: scripts run by other tests, or modules of functions other examples load
ELSEWHERE = {"sbi_weak_lensing.py", "sbi_example_simulator.py"}


def test_every_example_script_is_run_here_or_elsewhere():
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    assert scripts == set(SMALL_ARGUMENTS) | ELSEWHERE, scripts ^ (set(SMALL_ARGUMENTS) | ELSEWHERE)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SMALL_ARGUMENTS))
def test_example_script_runs(script, tmp_path):
    arguments = SMALL_ARGUMENTS[script].format(tmp=tmp_path).split()
    environment = {**os.environ, "MPLBACKEND": "Agg"}
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *arguments],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
