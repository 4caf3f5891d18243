"""Data files of ``astrobayes run``: every format gives the same array, bad files are named."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from astrobayes.io.run_files import read_data_arrays

TABLE = np.array([[8.76, -0.147, 2.87], [12.76, -1.845, 3.67], [20.1, 4.5, 2.2]])


def test_every_format_gives_the_same_array(tmp_path):
    np.save(tmp_path / "a.npy", TABLE)
    np.savez(tmp_path / "b.npz", rv=TABLE, other=np.zeros(2))
    np.savetxt(tmp_path / "c.txt", TABLE, header="t v err")  # '# t v err'
    (tmp_path / "d.txt").write_text("t v err\n" + "\n".join(" ".join(map(str, r)) for r in TABLE))
    # pandas' to_csv and spreadsheets write a row of names first (refused until 2026-12-06)
    (tmp_path / "e.csv").write_text(
        "# radial velocities\n\nt,v,err\n" + "\n".join(",".join(map(str, r)) for r in TABLE)
    )
    (tmp_path / "f.csv").write_text("\n".join(",".join(map(str, r)) for r in TABLE))
    files = {"a": "a.npy", "rv": "b.npz", "c": "c.txt", "d": "d.txt", "e": "e.csv", "f": "f.csv"}
    got = read_data_arrays(files, tmp_path)
    for name in files:
        np.testing.assert_array_equal(got[name], TABLE, err_msg=name)


def test_fits_tables_and_images(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    columns = [fits.Column(name=n, format="D", array=TABLE[:, i]) for i, n in enumerate("tve")]
    table = fits.BinTableHDU.from_columns(columns, name="RV")
    image = fits.ImageHDU(np.arange(6.0).reshape(2, 3), name="MAP")
    fits.HDUList([fits.PrimaryHDU(), table, image]).writeto(tmp_path / "d.fits")
    with open(tmp_path / "d.fits", "rb") as raw, gzip.open(tmp_path / "d.fits.gz", "wb") as out:
        out.write(raw.read())
    got = read_data_arrays({"rv": "d.fits", "map": "d.fits", "x": "d.fits.gz"}, tmp_path)
    np.testing.assert_array_equal(got["rv"], TABLE)  # by EXTNAME
    np.testing.assert_array_equal(got["map"], np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(got["x"], TABLE)  # no HDU of that name: the first with data
    text = fits.Column(name="star", format="10A", array=np.array(["a", "b", "c"]))
    fits.BinTableHDU.from_columns([columns[0], text]).writeto(tmp_path / "s.fits")
    with pytest.raises(ValueError, match=r"not numeric scalars: \['star'\]"):
        read_data_arrays({"s": "s.fits"}, tmp_path)


def test_bad_numbers_are_named_not_skipped_as_a_header(tmp_path):
    # one bad field among numbers is an error, not a header (the control of the header rule)
    (tmp_path / "bad.csv").write_text("1.0,2.0\n3.0,oops\n")
    with pytest.raises(ValueError, match=r"data file 'y' \(.*bad.csv\): cannot read numbers"):
        read_data_arrays({"y": "bad.csv"}, tmp_path)
    (tmp_path / "bad2.csv").write_text("1.0,x\n3.0,4.0\n")
    with pytest.raises(ValueError, match="cannot read numbers"):
        read_data_arrays({"y": "bad2.csv"}, tmp_path)
    with pytest.raises(FileNotFoundError, match="data file 'z'"):
        read_data_arrays({"z": "missing.txt"}, tmp_path)
