"""Video list files: the official VideoMAE format, one ``relative/path label`` per line.

A list file names the videos of one split and their class labels::

    abseiling/0347ZoDXyP0_000095_000105.mp4 0
    air drumming/03V2idM7_KY_000003_000013.mp4 1

The label is the last token of the line; everything before it is the path, so paths may contain
spaces. The separator is whitespace or a comma (``path,label`` and ``path, label`` work too).
Relative paths are taken relative to the data set root; absolute paths are kept as they are.
Blank lines are skipped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["VideoRecord", "read_list"]

# path (lazy, may contain spaces), then a separator of whitespace and/or one comma, then the label
# (the last token, no whitespace or comma in it)
_LINE = re.compile(r"^(?P<path>.+?)\s*[,\s]\s*(?P<label>[^\s,]+)$")


@dataclass(frozen=True)
class VideoRecord:
    """One video of a list file.

    Attributes:
        path: absolute path of the video file (relative list entries resolved against the root).
        label: class index, ``>= 0``.
        line: 1-based line number in the list file, for error messages.
    """

    path: Path
    label: int
    line: int


def read_list(list_file: str | Path, root: str | Path) -> list[VideoRecord]:
    """Read a list file of ``path label`` lines into records.

    Args:
        list_file: the list file (e.g. ``train.csv``).
        root: folder that relative paths in the list are relative to.

    Returns:
        One :class:`VideoRecord` per non-blank line, in file order.

    Raises:
        FileNotFoundError: the list file does not exist (the message names it).
        ValueError: a line has no label, a non-integer label or a negative label (the message
            names the list file, the line number and the line text).
    """
    list_path = Path(list_file).expanduser()
    if not list_path.is_file():
        raise FileNotFoundError(f"video list file not found: {list_path}")
    root_path = Path(os.path.abspath(Path(root).expanduser()))

    records: list[VideoRecord] = []
    with list_path.open("r", encoding="utf-8") as f:
        for line_no, raw in enumerate(f, start=1):
            text = raw.strip()
            if not text:
                continue
            match = _LINE.match(text)
            if match is None:
                raise ValueError(
                    f"{list_path}:{line_no}: expected 'path label', found no label in line {text!r}"
                )
            label_text = match.group("label")
            try:
                label = int(label_text)
            except ValueError:
                raise ValueError(
                    f"{list_path}:{line_no}: label {label_text!r} is not an integer "
                    f"in line {text!r}"
                ) from None
            if label < 0:
                raise ValueError(
                    f"{list_path}:{line_no}: label {label} is negative in line {text!r}"
                )
            video = Path(match.group("path")).expanduser()
            if not video.is_absolute():
                video = Path(os.path.abspath(root_path / video))
            records.append(VideoRecord(path=video, label=label, line=line_no))
    return records
