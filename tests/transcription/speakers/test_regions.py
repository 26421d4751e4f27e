"""Cells and windows cut from speech regions."""

from __future__ import annotations

from app.transcription.speakers.regions import Cell, cut_cells, pair_windows


def test_long_region_is_cut_into_back_to_back_cells() -> None:
    """Cells start every hop; a long enough remainder gets a last cell ending with the region."""
    cells = cut_cells([(0, 3600)], total=10_000, cell=1000, hop=1000)
    assert [(c.start, c.end) for c in cells] == [
        (0, 1000),
        (1000, 2000),
        (2000, 3000),
        (2600, 3600),
    ]


def test_short_region_gets_one_centred_cell_inside_the_audio() -> None:
    """A region shorter than a cell gets one cell around it, clamped to the audio."""
    assert cut_cells([(4000, 4400)], total=10_000, cell=1000, hop=1000) == [Cell(3700, 4700, 0)]
    assert cut_cells([(9800, 9900)], total=10_000, cell=1000, hop=1000) == [Cell(9000, 10_000, 0)]


def test_windows_pair_neighbouring_cells_of_one_region() -> None:
    """Windows never span two regions; a region with one cell is a window of its own."""
    cells = [Cell(0, 10, 0), Cell(10, 20, 0), Cell(20, 30, 0), Cell(50, 60, 1)]
    windows = pair_windows(cells)
    assert [(w.first, w.last) for w in windows] == [(0, 1), (1, 2), (3, 3)]
