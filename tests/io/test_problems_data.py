"""The radiata pine reader: header or not, comments, clear errors."""

import numpy as np
import pytest

from astrobayes.io import read_radiata_pine


def test_header_comment_and_plain_tables_read_alike(tmp_path):
    rows = "1 3040 29.2 25.4\n2 2470 24.7 22.2\n3 3610 32.3 32.2\n"
    for name, text in (("h", "id y x z\n" + rows), ("c", "# id y x z\n" + rows), ("p", rows)):
        (tmp_path / name).write_text(text)
    expected = np.array([[1, 3040, 29.2, 25.4], [2, 2470, 24.7, 22.2], [3, 3610, 32.3, 32.2]])
    for name in ("h", "c", "p"):
        np.testing.assert_array_equal(read_radiata_pine(tmp_path / name), expected)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_radiata_pine(tmp_path / "missing.dat")
    (tmp_path / "three.dat").write_text("id y x\n1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match=r"three.dat: expected 4 columns"):
        read_radiata_pine(tmp_path / "three.dat")
    (tmp_path / "text.dat").write_text("id y x z\n1 2 3 four\n")
    with pytest.raises(ValueError, match=r"text.dat: expected numeric columns"):
        read_radiata_pine(tmp_path / "text.dat")
