"""Video list files: which videos (or frame folders) make a split, and their labels.

Four ``list_format`` values are understood by :func:`read_list`:

``videomae``
    The official VideoMAE lists, one ``relative/path label`` per line::

        abseiling/0347ZoDXyP0_000095_000105.mp4 0
        air drumming/03V2idM7_KY_000003_000013.mp4 1

    The label is the last token of the line; everything before it is the path, so paths may
    contain spaces. The separator is whitespace or a comma (``path,label`` and ``path, label``
    work too). Labels are ``>= 0``.

``videomae_v2``
    The VideoMAE V2 pretraining lists, ``path start total label`` per line (the official loader
    reads the first three fields; the label is optional here)::

        k710/frames/abseiling/0347ZoDXyP0 1 300 -1        # a frame folder: 300 frames from frame 1
        k710/videos/air_drumming/03V2idM7_KY.mp4 0 -1 -1  # a video file, length read from the file
        ssv2/frames/74225 1 37                             # the label may be left out

    ``start`` is the number of the first frame to use and ``total`` the number of frames (see
    :func:`videomae.data.decoding.read_frames` for how frame numbers map to the images of a frame
    folder). ``0 -1`` marks a video file whose length is read from the file (``total=None``).
    The records are unlabeled (label ``-1``) unless the fourth field holds a label ``>= 0``.
    With four integer-looking tokens the first one is the path (``74225 1 37 -1``).

``folders``
    A folder-per-class tree: ``list_file`` is a directory holding one folder per class, each
    holding video files (suffixes in :data:`VIDEO_SUFFIXES`) and/or frame folders (folders of
    ``.jpg`` / ``.jpeg`` / ``.png`` images)::

        tree/abseiling/0347ZoDXyP0.mp4
        tree/abseiling/1a2b3c/img_00001.jpg ...   # a frame folder

    The class index is the position of the class folder's name in ``classes`` when given, else
    in the sorted class folder names (:func:`folder_classes`). Entries are taken class by class,
    in natural name order (``clip2`` before ``clip10``); hidden names (``.``) and files with other
    suffixes are skipped. A record's ``line`` is its 1-based position in that order.

``auto``
    A directory is read as ``folders``; a file whose every non-blank line ends in three integer
    tokens (``path start total label``) as ``videomae_v2``; any other file as ``videomae``. (A V2
    list without labels, ``path start total``, needs ``list_format="videomae_v2"``: its lines
    look like ``path label`` lines whose path ends in a number.)

Relative paths are taken relative to the data set ``root``; absolute paths are kept as they
are. Blank lines are skipped. A path that names a directory is a frame folder, any other path a
video file (:func:`missing_files` finds the ones that are neither).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from videomae.errors import ConfigError, DataNotFoundError

__all__ = [
    "DIGITS",
    "IMAGE_SUFFIXES",
    "LIST_FORMATS",
    "MISSING_SHOWN",
    "VIDEO_SUFFIXES",
    "VideoRecord",
    "detect_list_format",
    "folder_classes",
    "missing_files",
    "natural_key",
    "read_list",
]

LIST_FORMATS = ("auto", "videomae", "videomae_v2", "folders")
"""The values of ``list_format``."""

VIDEO_SUFFIXES = (
    ".mp4",
    ".webm",
    ".avi",
    ".mkv",
    ".mov",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".flv",
    ".wmv",
    ".3gp",
    ".ogv",
    ".ts",
)
"""File suffixes (lower case) taken as video files in a folder tree."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
"""File suffixes (lower case) of the frames of a frame folder."""

MISSING_SHOWN = 10
"""How many missing video paths a message names (the others are counted)."""

# path (lazy, may contain spaces), then a separator of whitespace and/or one comma, then the label
# (the last token, no whitespace or comma in it)
_LINE = re.compile(r"^(?P<path>.+?)\s*[,\s]\s*(?P<label>[^\s,]+)$")
# path, then integer tokens start, total (and an optional label), separated like the label above
_SEP = r"\s*[,\s]\s*"
_INT = r"[-+]?\d+"
_V2_LINE_LABELED = re.compile(
    rf"^(?P<path>.+?){_SEP}(?P<start>{_INT}){_SEP}(?P<total>{_INT}){_SEP}(?P<label>{_INT})$"
)
_V2_LINE = re.compile(rf"^(?P<path>.+?){_SEP}(?P<start>{_INT}){_SEP}(?P<total>{_INT})$")
# any three integer tokens at the end of a line (the auto-detection rule for V2 lists)
_THREE_INTS = re.compile(r"(?:^|[\s,])[-+]?\d+\s*[,\s]\s*[-+]?\d+\s*[,\s]\s*[-+]?\d+$")

DIGITS = re.compile(r"(\d+)")
"""Runs of digits (one group): :func:`natural_key` and the frame numbers of frame folders."""


@dataclass(frozen=True)
class VideoRecord:
    """One video (or frame folder) of a list.

    Attributes:
        path: absolute path of the video file or frame folder (relative list entries resolved
            against the root).
        label: class index ``>= 0``, or ``-1`` for an unlabeled entry (VideoMAE V2 lists).
        line: 1-based line number in the list file, for error messages (the entry's position in
            a folder tree).
        start: number of the first frame to use (V2 frame folders; ``0`` = from the beginning).
        total: number of frames to use from ``start``; ``None`` counts them from the file or
            folder.
    """

    path: Path
    label: int
    line: int
    start: int = 0
    total: int | None = None


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``img_2.jpg`` before ``img_10.jpg``.

    For zero-padded names (``img_00002.jpg``) this is the plain name order.
    """
    parts = DIGITS.split(name)
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts)


def data_set_paths(
    root: str | Path, lists: dict[str, str | Path | None]
) -> tuple[Path, dict[str, Path | None]]:
    """``root`` made absolute and each list (``train_list``, ``val_list``, ...: relative paths
    are under ``root``) resolved; None stays None."""
    base = Path(root).expanduser().absolute()
    resolved: dict[str, Path | None] = {}
    for key, value in lists.items():
        path = Path(value).expanduser() if value is not None else None
        resolved[key] = path if path is None or path.is_absolute() else base / path
    return base, resolved


def require_path(path: Path, what: str, hint: str | None = None, folder: bool = False) -> None:
    """:class:`~videomae.errors.DataNotFoundError` naming ``path`` (``what`` names its config
    key) and how to prepare it, if it is missing (``folder``: it must be a folder; a list may be a
    file or a folder-per-class tree)."""
    if path.is_dir() if folder else path.exists():
        return
    message = f"{what} not found: {path}"
    if hint:
        message += f"\nHow to prepare it: {hint.strip()}"
    raise DataNotFoundError(message)


def require_data_set(
    root: str | Path, lists: dict[str, str | Path | None], hint: str | None = None
) -> None:
    """Check that a real data set is on disk: the ``data.root`` folder and every list given
    (``train_list`` first); the first missing one raises, naming its key and path."""
    base, resolved = data_set_paths(root, lists)
    require_path(base, "data.root: data set folder", hint, folder=True)
    for key, path in resolved.items():
        if path is not None:
            require_path(
                path, f"data.{key}: {'list file' if key.endswith('list') else 'file'}", hint
            )


def per_class_subset(
    records: Sequence[VideoRecord], per_class: int, seed: int
) -> list[VideoRecord]:
    """``per_class`` records of each class, drawn at random with ``seed`` (the same records for
    the same list and seed, in list order): the labeled subset of a label-efficiency run.

    Raises:
        ConfigError: a record without a label, or a class with fewer than ``per_class`` records.
    """
    import random

    by_class: dict[int, list[VideoRecord]] = {}
    for record in records:
        if record.label < 0:
            raise ConfigError(
                f"data.labeled_per_class needs labels; line {record.line} ({record.path}) has none"
            )
        by_class.setdefault(record.label, []).append(record)
    short = {c: len(r) for c, r in sorted(by_class.items()) if len(r) < per_class}
    if short:
        raise ConfigError(
            f"data.labeled_per_class={per_class}: classes with fewer training videos: "
            + ", ".join(f"class {c} has {n}" for c, n in short.items())
        )
    rng = random.Random(seed)
    chosen = {id(r) for c in sorted(by_class) for r in rng.sample(by_class[c], per_class)}
    return [r for r in records if id(r) in chosen]


def detect_list_format(list_file: str | Path) -> str:
    """The format ``auto`` picks for ``list_file``: ``folders``, ``videomae_v2`` or ``videomae``.

    Raises:
        FileNotFoundError: ``list_file`` is neither a file nor a directory.
    """
    path = Path(list_file).expanduser()
    if path.is_dir():
        return "folders"
    if not path.is_file():
        raise FileNotFoundError(f"video list file not found: {path}")
    with path.open("r", encoding="utf-8") as f:
        return _detect_lines(f.read().splitlines())


def _detect_lines(lines: Sequence[str]) -> str:
    """``videomae_v2`` when every non-blank line ends in three integer tokens, else ``videomae``."""
    texts = [line.strip() for line in lines if line.strip()]
    if texts and all(_THREE_INTS.search(text) for text in texts):
        return "videomae_v2"
    return "videomae"


def _resolve(text: str, root: Path) -> Path:
    """Absolute path of a list entry (relative entries are relative to ``root``, which is
    absolute); string operations, as this runs once per line of lists of millions of lines."""
    if text.startswith("~"):
        text = os.path.expanduser(text)
    if not os.path.isabs(text):
        text = os.path.join(root, text)
    return Path(os.path.normpath(text))


def _parse_videomae(
    lines: Sequence[str], list_path: Path, root: Path, num_classes: int | None
) -> list[VideoRecord]:
    """Records of an official ``path label`` list."""
    records: list[VideoRecord] = []
    for line_no, raw in enumerate(lines, start=1):
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
                f"{list_path}:{line_no}: label {label_text!r} is not an integer in line {text!r}"
            ) from None
        if label < 0:
            raise ValueError(f"{list_path}:{line_no}: label {label} is negative in line {text!r}")
        if num_classes is not None and label >= num_classes:
            raise ValueError(
                f"{list_path}:{line_no}: label {label} is not below the {num_classes} classes "
                f"given in line {text!r}"
            )
        records.append(VideoRecord(_resolve(match.group("path"), root), label, line_no))
    return records


def _parse_videomae_v2(lines: Sequence[str], list_path: Path, root: Path) -> list[VideoRecord]:
    """Records of a VideoMAE V2 ``path start total [label]`` list (label -1 when absent)."""
    records: list[VideoRecord] = []
    for line_no, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        match = _V2_LINE_LABELED.match(text) or _V2_LINE.match(text)
        if match is None:
            raise ValueError(
                f"{list_path}:{line_no}: expected 'path start total [label]' (VideoMAE V2 list), "
                f"found line {text!r}"
            )
        label = int(match.group("label")) if "label" in match.groupdict() else -1
        start, total = int(match.group("start")), int(match.group("total"))
        if start < 0:
            raise ValueError(
                f"{list_path}:{line_no}: start frame {start} is negative in line {text!r}"
            )
        if total == -1:
            if start != 0:
                raise ValueError(
                    f"{list_path}:{line_no}: total -1 (a video file) needs start 0, got start "
                    f"{start} in line {text!r}"
                )
            count: int | None = None
        elif total < 1:
            raise ValueError(
                f"{list_path}:{line_no}: total {total} must be >= 1 (or -1 for a video file) "
                f"in line {text!r}"
            )
        else:
            count = total
        path = _resolve(match.group("path"), root)
        records.append(VideoRecord(path, max(label, -1), line_no, start=start, total=count))
    return records


def _visible_entries(folder: Path) -> list[os.DirEntry]:
    """Entries of ``folder`` whose names do not start with a dot, in natural name order."""
    with os.scandir(folder) as it:
        entries = [e for e in it if not e.name.startswith(".")]
    return sorted(entries, key=lambda e: natural_key(e.name))


def folder_classes(tree: str | Path) -> list[str]:
    """Sorted names of the class folders of a folder-per-class tree.

    Raises:
        FileNotFoundError: ``tree`` is not a directory.
        ValueError: ``tree`` holds no (non-hidden) folder.
    """
    path = Path(tree).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"class folder tree not found (not a directory): {path}")
    names = sorted(e.name for e in _visible_entries(path) if e.is_dir())
    if not names:
        raise ValueError(f"class folder tree {path} has no class folders")
    return names


def _parse_folders(tree: Path, classes: Sequence[str] | None) -> list[VideoRecord]:
    """Records of a folder-per-class tree: video files and frame folders, class by class."""
    found = folder_classes(tree)
    if classes is None:
        class_names = found
    else:
        class_names = list(classes)
        unknown = sorted(set(found) - set(class_names))
        if unknown:
            raise ValueError(
                f"class folders {unknown} of {tree} are not among the {len(class_names)} "
                f"classes given ({class_names[:5]}{' ...' if len(class_names) > 5 else ''})"
            )
    index = {name: i for i, name in enumerate(class_names)}
    records: list[VideoRecord] = []
    for name in found:
        folder = tree / name
        for entry in _visible_entries(folder):
            is_video = entry.is_file() and os.path.splitext(entry.name)[1].lower() in VIDEO_SUFFIXES
            if is_video or entry.is_dir():
                path = Path(os.path.abspath(entry.path))
                records.append(VideoRecord(path, index[name], len(records) + 1))
    return records


def read_list(
    list_file: str | Path,
    root: str | Path,
    list_format: str = "auto",
    classes: Sequence[str] | None = None,
) -> list[VideoRecord]:
    """Read a video list (any of the formats in the module docstring) into records.

    Args:
        list_file: the list file (e.g. ``train.csv``), or the tree directory for ``folders``.
        root: folder that relative paths in a list file are relative to (unused by ``folders``,
            whose records carry the absolute paths found in the tree).
        list_format: ``auto``, ``videomae``, ``videomae_v2`` or ``folders``.
        classes: class names; for ``folders`` the label is the position of the class folder's
            name here (default: the sorted class folder names), for ``videomae`` lists labels
            must be below ``len(classes)``. Unused by ``videomae_v2`` (unlabeled).

    Returns:
        One :class:`VideoRecord` per entry, in list order.

    Raises:
        FileNotFoundError: the list file (or tree) does not exist (the message names it).
        ValueError: ``list_format`` is unknown, or a line fits the format not (the message names
            the list file, the line number and the line text).
    """
    if list_format not in LIST_FORMATS:
        raise ValueError(f"unknown list_format {list_format!r}; choose one of {LIST_FORMATS}")
    list_path = Path(list_file).expanduser()
    root_path = Path(os.path.abspath(Path(root).expanduser()))
    if list_format == "folders" or (list_format == "auto" and list_path.is_dir()):
        return _parse_folders(list_path, classes)
    if list_path.is_dir():
        raise ValueError(
            f"{list_path} is a directory; list_format {list_format!r} needs a list file "
            "(use 'folders' or 'auto' for a folder-per-class tree)"
        )
    if not list_path.is_file():
        raise FileNotFoundError(f"video list file not found: {list_path}")
    with list_path.open("r", encoding="utf-8") as f:
        lines = f.read().splitlines()
    if list_format == "auto":
        list_format = _detect_lines(lines)
    if list_format == "videomae_v2":
        return _parse_videomae_v2(lines, list_path, root_path)
    return _parse_videomae(lines, list_path, root_path, None if classes is None else len(classes))


def missing_files(records: Sequence[VideoRecord], workers: int = 1) -> list[VideoRecord]:
    """Records whose path exists neither as a file nor as a folder, in list order.

    One ``os.path.exists`` per record: about 3 s for a million paths on a local disk. With
    ``workers > 1`` the paths are checked in chunks by that many threads, which helps on network
    file systems (stat calls release the GIL) but not on a local disk, where the plain loop is
    faster.
    """
    if workers <= 1 or len(records) < 4096:
        return [r for r in records if not os.path.exists(r.path)]
    chunk = 4096
    parts = [records[i : i + chunk] for i in range(0, len(records), chunk)]

    def gone(part: Sequence[VideoRecord]) -> list[VideoRecord]:
        return [r for r in part if not os.path.exists(r.path)]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [r for found in pool.map(gone, parts) for r in found]
