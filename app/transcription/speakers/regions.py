"""Where people speak, and the cells and windows the embedder and the clustering see.

Speech regions come from faster-whisper's Silero VAD with short silences allowed, so a
turn change at a brief pause starts a new region. Each region is cut into back-to-back
cells of the embedder's own length (each cell embedded once), and two neighbouring cells
make one clustering window (about 1.6 s every 0.8 s), which is steadier than one cell.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "SAMPLE_RATE",
    "Cell",
    "Window",
    "cell_audio",
    "cut_cells",
    "pair_windows",
    "speech_regions",
]

SAMPLE_RATE = 16_000
FloatArray = npt.NDArray[np.float32]


class Cell(NamedTuple):
    """Samples ``[start, end)`` of the audio, within speech region number ``region``."""

    start: int
    end: int
    region: int


class Window(NamedTuple):
    """Cells ``first..last`` (inclusive) of one region, clustered as one vector."""

    first: int
    last: int
    start_s: float
    end_s: float


def speech_regions(audio: FloatArray) -> list[tuple[int, int]]:
    """``(start, end)`` sample spans of speech, by Silero VAD (silences of 0.3 s and more
    end a region; 0.1 s of padding keeps word edges)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=300, speech_pad_ms=100)
    spans = get_speech_timestamps(audio, options)
    return [(int(span["start"]), int(span["end"])) for span in spans]


def cut_cells(regions: list[tuple[int, int]], total: int, cell: int, hop: int) -> list[Cell]:
    """Cells of ``cell`` samples every ``hop`` samples inside each region.

    A region shorter than a cell gets one cell centred on it (reaching into the silence
    around it); a remainder longer than half a cell gets a last cell ending with the region.
    """
    cells: list[Cell] = []
    for index, (start, end) in enumerate(regions):
        if end - start <= cell:
            left = max(0, min((start + end - cell) // 2, total - cell))
            cells.append(Cell(left, left + cell, index))
            continue
        begin = start
        while begin + cell <= end:
            cells.append(Cell(begin, begin + cell, index))
            begin += hop
        if end - (begin - hop + cell) > cell // 2:
            cells.append(Cell(end - cell, end, index))
    return cells


def pair_windows(cells: list[Cell]) -> list[Window]:
    """Each pair of neighbouring cells of one region is a window; a lone cell is one too."""
    windows: list[Window] = []
    for index, cell in enumerate(cells):
        following = cells[index + 1] if index + 1 < len(cells) else None
        previous = cells[index - 1] if index > 0 else None
        if following is not None and following.region == cell.region:
            windows.append(_window(index, index + 1, cell, following))
        elif previous is None or previous.region != cell.region:
            windows.append(_window(index, index, cell, cell))
    return windows


def _window(first: int, last: int, first_cell: Cell, last_cell: Cell) -> Window:
    return Window(first, last, first_cell.start / SAMPLE_RATE, last_cell.end / SAMPLE_RATE)


def cell_audio(audio: FloatArray, cells: list[Cell]) -> FloatArray:
    """The cells' samples as one ``(n, cell)`` array; audio shorter than a cell is padded."""
    if not cells:
        return np.zeros((0, 0), dtype=np.float32)
    length = cells[0].end - cells[0].start
    padded = audio if len(audio) >= length else np.pad(audio, (0, length - len(audio)))
    return np.stack([padded[cell.start : cell.start + length] for cell in cells]).astype(np.float32)
