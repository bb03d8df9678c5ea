"""``videomae-prepare``: write video list files from a data set's official annotations.

Usage::

    videomae-prepare ssv2   --root DIR [--annotations DIR] [--out DIR] [--strict]
    videomae-prepare k400   --root DIR [--annotations DIR] [--out DIR] [--strict]
    videomae-prepare ucf101 --root DIR [--annotations DIR] [--split {1,2,3}] ...
    videomae-prepare hmdb51 --root DIR [--annotations DIR] [--split {1,2,3}] ...
    videomae-prepare folders --root DIR [--val-fraction 0.1] [--seed 0] ...

Writes ``train.csv``, ``val.csv`` (and ``test.csv`` where the data set has one) in the official
VideoMAE list format, one ``relative/path label`` line per video with the path relative to
``--root``, and ``labels.txt`` with the class names, one per line, line ``i`` naming class ``i``.
The lists go to ``--out`` (default: the root); ``--annotations`` is where the annotation files
are (default: the root; an annotation file is also found one folder down, e.g. in
``ucfTrainTestlist/``).

Videos named by the annotations but not found on disk are left out of the lists and reported
(count and the first paths); with ``--strict`` they are an error and nothing is written. Exit
status: 0 on success, 1 when ``--strict`` finds missing videos, 2 on bad input (a missing or
malformed annotation file; the message names the file and line).

Per data set:

- ``ssv2``: ``something-something-v2-labels.json`` (``{class name: "index"}``) and
  ``something-something-v2-{train,validation}.json``; the class of a video is its ``template``
  with the square brackets removed. Videos ``<id>.webm`` (or ``.mp4``) anywhere under the root.
  ``test.csv`` = the validation set (the official practice: the test labels are not public).
- ``k400``: ``train.csv``, ``validate.csv`` (or ``val.csv``) and optionally ``test.csv`` with the
  header ``label,youtube_id,time_start,time_end,split[,is_cc]``; videos
  ``<youtube_id>_<time_start:06d>_<time_end:06d>.mp4`` (or ``.mkv``, ``.webm``, ``.avi``)
  anywhere under the root; class index = position in the sorted training class names.
  ``test.csv`` = the test CSV if it has labels, else the validation set.
- ``ucf101``: ``classInd.txt``, ``trainlist0N.txt`` and ``testlist0N.txt`` of split ``N``; videos
  at ``root/<path>``. ``val.csv`` and ``test.csv`` = the test list.
- ``hmdb51``: ``<class>_test_splitN.txt`` (``video.avi 1`` train, ``2`` test, ``0`` unused);
  classes in sorted order; videos at ``root/<class>/<video>``. ``val.csv`` and ``test.csv`` = the
  test part.
- ``folders``: one folder per class. With ``train/`` and ``val/`` (or ``test/``) folders under the
  root those are the splits; otherwise every class is split deterministically into
  ``--val-fraction`` validation videos by ``--seed``. A video is a file with a video suffix or a
  folder of images (frames).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from videomae.data.lists import IMAGE_SUFFIXES, MISSING_SHOWN, VIDEO_SUFFIXES, natural_key

__all__ = [
    "PrepareError",
    "Prepared",
    "build_parser",
    "find_videos",
    "index_videos",
    "k400_file_stem",
    "main",
    "missing_report",
    "prepare_folders",
    "prepare_hmdb51",
    "prepare_k400",
    "prepare_ssv2",
    "prepare_ucf101",
    "ssv2_class_name",
    "summary",
    "write_prepared",
]

SSV2_SUFFIXES = (".webm", ".mp4")
K400_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi")

Entry = tuple[str, int]
"""One list line: path relative to the root (``/`` separated) and class index."""


class PrepareError(ValueError):
    """An annotation file is missing or malformed (the message names the file and line)."""


@dataclass
class Prepared:
    """The lists of one data set, ready to write.

    Attributes:
        name: data set name, for the summary.
        classes: class names; index ``i`` names class ``i``.
        splits: output list name (``train``, ``val``, ``test``) -> entries in list order.
        missing: annotation part (e.g. ``train``, ``validation``) -> paths of videos it names
            that are not on disk (left out of ``splits``).
        notes: remarks printed with the summary (e.g. which set ``test.csv`` repeats).
        sources: annotation files read (never overwritten by the lists).
    """

    name: str
    classes: list[str]
    splits: dict[str, list[Entry]]
    missing: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)

    @property
    def missing_count(self) -> int:
        """Number of distinct missing videos over all annotation parts."""
        return len({p for paths in self.missing.values() for p in paths})


# ----------------------------------------------------------------------------------- helpers
def _rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators (the list file form)."""
    return Path(os.path.relpath(path, root)).as_posix()


def _walk(root: Path) -> Iterable[tuple[Path, list[str], list[str]]]:
    """``os.walk`` in sorted order, following folder links once (no loops)."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames.sort()
        filenames.sort()
        yield Path(dirpath), dirnames, filenames


def index_videos(root: str | Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """Index every video file under ``root`` by its stem (the file name without the suffix).

    Walks the tree once, in sorted order. When a stem occurs more than once, the file whose
    suffix comes first in ``suffixes`` wins, then the first in path order, so the result does
    not depend on the file system's listing order.

    Args:
        root: the folder to search (any layout: ``split/label/file``, ``split/file``, flat).
        suffixes: the video suffixes to index, in order of preference (e.g. ``(".webm", ".mp4")``).

    Returns:
        stem -> absolute path of the video.
    """
    rank = {s.lower(): i for i, s in enumerate(suffixes)}
    best: dict[str, tuple[int, Path]] = {}
    for dirpath, _, filenames in _walk(Path(root)):
        for name in filenames:
            stem, suffix = os.path.splitext(name)
            r = rank.get(suffix.lower())
            if r is None:
                continue
            if stem not in best or r < best[stem][0]:
                best[stem] = (r, dirpath / name)
    return {stem: path for stem, (_, path) in best.items()}


def _is_frame_folder(folder: Path) -> bool:
    """Whether ``folder`` directly holds frame images (``lists.IMAGE_SUFFIXES``)."""
    try:
        with os.scandir(folder) as it:
            return any(
                entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
                for entry in it
            )
    except OSError:
        return False


def find_videos(folder: str | Path) -> list[Path]:
    """The videos under ``folder``: video files and frame folders, searched recursively.

    A video file has a suffix in :data:`~videomae.data.lists.VIDEO_SUFFIXES`; a frame folder
    holds images directly and counts as one video (it is not searched further); other folders
    are searched. Hidden names (``.``) are skipped. Entries come in natural name order per
    folder (``clip2`` before ``clip10``), the order of ``read_list``'s ``folders`` format.
    """
    videos: list[Path] = []
    seen: set[tuple[int, int]] = set()

    def visit(directory: Path) -> None:
        st = directory.stat()
        if (st.st_dev, st.st_ino) in seen:  # a folder link loop
            return
        seen.add((st.st_dev, st.st_ino))
        with os.scandir(directory) as it:
            entries = sorted(
                (e for e in it if not e.name.startswith(".")), key=lambda e: natural_key(e.name)
            )
        for entry in entries:
            path = directory / entry.name
            if entry.is_dir():
                if _is_frame_folder(path):
                    videos.append(path)
                else:
                    visit(path)
            elif os.path.splitext(entry.name)[1].lower() in VIDEO_SUFFIXES:
                videos.append(path)

    visit(Path(folder))
    return videos


def _find_annotation(folder: Path, name: str) -> Path:
    """``folder/name``, or the one ``folder/*/name``; a :class:`PrepareError` names both."""
    direct = folder / name
    if direct.is_file():
        return direct
    below = sorted(p for p in folder.glob(f"*/{name}") if p.is_file())
    if len(below) == 1:
        return below[0]
    if len(below) > 1:
        found = ", ".join(str(p) for p in below)
        raise PrepareError(f"annotation file {name} found more than once under {folder}: {found}")
    raise PrepareError(
        f"annotation file not found: {direct} (nor in a folder below {folder}); "
        "pass --annotations DIR"
    )


def _read_json(path: Path) -> object:
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise PrepareError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    """Non-blank stripped lines of a text file with their 1-based numbers."""
    with path.open(encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            text = raw.strip()
            if text:
                yield number, text


def _collect(
    wanted: Iterable[tuple[str, int, Path | None]], root: Path
) -> tuple[list[Entry], list[str]]:
    """Split ``(name, label, path or None)`` into list entries and missing names."""
    entries: list[Entry] = []
    missing: list[str] = []
    for name, label, path in wanted:
        if path is None:
            missing.append(name)
        else:
            entries.append((_rel(path, root), label))
    return entries, missing


# ----------------------------------------------------------------------------------- ssv2
SSV2_LABELS = "something-something-v2-labels.json"
SSV2_PARTS = {
    "train": "something-something-v2-train.json",
    "validation": "something-something-v2-validation.json",
}


def ssv2_class_name(template: str) -> str:
    """SSv2 class name of a template: the square brackets removed.

    ``"Putting [something] on [something]"`` -> ``"Putting something on something"``.
    """
    return template.replace("[", "").replace("]", "")


def _ssv2_classes(path: Path) -> list[str]:
    data = _read_json(path)
    if not isinstance(data, dict) or not data:
        raise PrepareError(f"{path}: expected a JSON object {{class name: index}}")
    by_index: dict[int, str] = {}
    for name, value in data.items():
        try:
            index = int(value)
        except (TypeError, ValueError):
            raise PrepareError(
                f"{path}: class {name!r} has index {value!r}, not an integer"
            ) from None
        if index in by_index:
            raise PrepareError(
                f"{path}: index {index} is given to both {by_index[index]!r} and {name!r}"
            )
        by_index[index] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise PrepareError(
            f"{path}: class indices must be 0..{len(by_index) - 1}, "
            f"got {sorted(by_index)[:5]}...{sorted(by_index)[-1]}"
        )
    return [by_index[i] for i in range(len(by_index))]


def prepare_ssv2(root: str | Path, annotations: str | Path | None = None) -> Prepared:
    """Lists of Something-Something V2 from its JSON annotations (see the module docstring)."""
    root = Path(root)
    ann = Path(annotations) if annotations is not None else root
    labels_path = _find_annotation(ann, SSV2_LABELS)
    classes = _ssv2_classes(labels_path)
    index_of = {name: i for i, name in enumerate(classes)}
    sources = [labels_path]
    parts: dict[str, list[tuple[str, int, str]]] = {}
    for part, file_name in SSV2_PARTS.items():
        path = _find_annotation(ann, file_name)
        sources.append(path)
        data = _read_json(path)
        if not isinstance(data, list):
            raise PrepareError(f"{path}: expected a JSON list of videos")
        rows = []
        for number, item in enumerate(data, start=1):
            if not isinstance(item, dict) or "id" not in item or "template" not in item:
                raise PrepareError(
                    f"{path}: entry {number} has no 'id' or 'template' ({str(item)[:120]})"
                )
            name = ssv2_class_name(str(item["template"]))
            if name not in index_of:
                raise PrepareError(
                    f"{path}: entry {number} (id {item['id']}): class {name!r} "
                    f"(template {item['template']!r}) is not in {labels_path}"
                )
            rows.append((str(item["id"]), index_of[name], f"{item['id']}.webm"))
        parts[part] = rows

    found = index_videos(root, SSV2_SUFFIXES)
    splits: dict[str, list[Entry]] = {}
    missing: dict[str, list[str]] = {}
    for part, out in (("train", "train"), ("validation", "val")):
        splits[out], missing[part] = _collect(
            ((shown, label, found.get(vid)) for vid, label, shown in parts[part]), root
        )
    splits["test"] = list(splits["val"])
    return Prepared(
        "ssv2",
        classes,
        splits,
        missing,
        notes=["test.csv = validation (the SSv2 test labels are not public)"],
        sources=sources,
    )


# ----------------------------------------------------------------------------------- k400
K400_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


def k400_file_stem(youtube_id: str, time_start: int, time_end: int) -> str:
    """File name (without suffix) of a Kinetics clip: ``<youtube_id>_<start:06d>_<end:06d>``."""
    return f"{youtube_id}_{time_start:06d}_{time_end:06d}"


def _seconds(path: Path, line: int, column: str, text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer() or value < 0:
        raise PrepareError(f"{path}:{line}: {column} {text!r} is not a whole number of seconds")
    return int(value)


def _read_k400_csv(path: Path, need_label: bool) -> list[tuple[int, str, str]] | None:
    """``(line, label, stem)`` rows of a Kinetics CSV; ``None`` when it has no labels."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise PrepareError(f"{path}: the file is empty (expected a header line)")
        header = [h.strip() for h in header]
        needed = K400_COLUMNS if need_label else K400_COLUMNS[1:]
        absent = [c for c in needed if c not in header]
        if absent:
            raise PrepareError(
                f"{path}:1: header {','.join(header)!r} lacks column(s) {', '.join(absent)} "
                "(expected label,youtube_id,time_start,time_end,split)"
            )
        col = {name: header.index(name) for name in K400_COLUMNS if name in header}
        rows = []
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise PrepareError(
                    f"{path}:{line}: {len(row)} fields, the header has {len(header)}: {row}"
                )
            label = row[col["label"]].strip() if "label" in col else ""
            start = _seconds(path, line, "time_start", row[col["time_start"]].strip())
            end = _seconds(path, line, "time_end", row[col["time_end"]].strip())
            stem = k400_file_stem(row[col["youtube_id"]].strip(), start, end)
            rows.append((line, label, stem))
    if not need_label and (not rows or not all(label for _, label, _ in rows)):
        return None
    if need_label:
        for line, label, _ in rows:
            if not label:
                raise PrepareError(f"{path}:{line}: empty label")
    return rows


def prepare_k400(root: str | Path, annotations: str | Path | None = None) -> Prepared:
    """Lists of Kinetics-400 (or -600/-700) from its CSVs (see the module docstring)."""
    root = Path(root)
    ann = Path(annotations) if annotations is not None else root
    train_path = _find_annotation(ann, "train.csv")
    try:
        val_path = _find_annotation(ann, "validate.csv")
    except PrepareError:
        try:
            val_path = _find_annotation(ann, "val.csv")
        except PrepareError:
            raise PrepareError(
                f"annotation file not found: {ann / 'validate.csv'} (nor val.csv, nor in a "
                f"folder below {ann}); pass --annotations DIR"
            ) from None
    train_rows = _read_k400_csv(train_path, need_label=True) or []
    val_rows = _read_k400_csv(val_path, need_label=True) or []
    sources = [train_path, val_path]
    notes = []
    test_rows = None
    try:
        test_path = _find_annotation(ann, "test.csv")
    except PrepareError:
        notes.append("test.csv = validate (no test CSV found)")
    else:
        sources.append(test_path)
        test_rows = _read_k400_csv(test_path, need_label=False)
        if test_rows is None:
            notes.append(f"test.csv = validate ({test_path} has no labels)")

    classes = sorted({label for _, label, _ in train_rows})
    index_of = {name: i for i, name in enumerate(classes)}
    found = index_videos(root, K400_SUFFIXES)

    def resolve(rows: list[tuple[int, str, str]], path: Path) -> tuple[list[Entry], list[str]]:
        wanted = []
        for line, label, stem in rows:
            if label not in index_of:
                raise PrepareError(
                    f"{path}:{line}: label {label!r} is not a class of the training set "
                    f"{train_path}"
                )
            wanted.append((f"{stem}.mp4", index_of[label], found.get(stem)))
        return _collect(wanted, root)

    splits: dict[str, list[Entry]] = {}
    missing: dict[str, list[str]] = {}
    splits["train"], missing["train"] = resolve(train_rows, train_path)
    splits["val"], missing["validate"] = resolve(val_rows, val_path)
    if test_rows is None:
        splits["test"] = list(splits["val"])
    else:
        splits["test"], missing["test"] = resolve(test_rows, test_path)
    return Prepared("k400", classes, splits, missing, notes=notes, sources=sources)


# ----------------------------------------------------------------------------------- ucf101
def _check_split(split: int) -> None:
    if split not in (1, 2, 3):
        raise PrepareError(f"--split must be 1, 2 or 3, got {split}")


def prepare_ucf101(
    root: str | Path, annotations: str | Path | None = None, split: int = 1
) -> Prepared:
    """Lists of UCF101 split ``split`` from ``classInd.txt`` and the split lists."""
    _check_split(split)
    root = Path(root)
    ann = Path(annotations) if annotations is not None else root
    class_path = _find_annotation(ann, "classInd.txt")
    classes: list[str] = []
    for number, text in _lines(class_path):
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise PrepareError(f"{class_path}:{number}: expected 'index ClassName', got {text!r}")
        if int(parts[0]) != len(classes) + 1:
            raise PrepareError(
                f"{class_path}:{number}: expected class index {len(classes) + 1}, got {parts[0]}"
            )
        classes.append(parts[1])
    if not classes:
        raise PrepareError(f"{class_path}: no classes")
    index_of = {name: i for i, name in enumerate(classes)}

    def read(file_name: str, labelled: bool) -> tuple[Path, list[tuple[str, int, Path | None]]]:
        path = _find_annotation(ann, file_name)
        wanted = []
        for number, text in _lines(path):
            parts = text.split()
            rel = parts[0].replace("\\", "/")
            if len(parts) != (2 if labelled else 1) or "/" not in rel:
                form = "Class/video.avi label" if labelled else "Class/video.avi"
                raise PrepareError(f"{path}:{number}: expected '{form}', got {text!r}")
            folder = rel.split("/")[0]
            if folder not in index_of:
                raise PrepareError(
                    f"{path}:{number}: class folder {folder!r} is not in {class_path}"
                )
            label = index_of[folder]
            if labelled and parts[1] != str(label + 1):
                raise PrepareError(
                    f"{path}:{number}: label {parts[1]} does not match the class folder "
                    f"{folder!r} (index {label + 1} in {class_path})"
                )
            video = root / rel
            wanted.append((rel, label, video if video.exists() else None))
        return path, wanted

    train_path, train = read(f"trainlist0{split}.txt", labelled=True)
    test_path, test = read(f"testlist0{split}.txt", labelled=False)
    splits: dict[str, list[Entry]] = {}
    missing: dict[str, list[str]] = {}
    splits["train"], missing["train"] = _collect(train, root)
    splits["test"], missing["test"] = _collect(test, root)
    splits["val"] = list(splits["test"])
    return Prepared(
        "ucf101",
        classes,
        {"train": splits["train"], "val": splits["val"], "test": splits["test"]},
        missing,
        notes=[f"split {split}; val.csv = test.csv = testlist0{split}.txt"],
        sources=[class_path, train_path, test_path],
    )


# ----------------------------------------------------------------------------------- hmdb51
def prepare_hmdb51(
    root: str | Path, annotations: str | Path | None = None, split: int = 1
) -> Prepared:
    """Lists of HMDB51 split ``split`` from the ``<class>_test_splitN.txt`` files."""
    _check_split(split)
    root = Path(root)
    ann = Path(annotations) if annotations is not None else root
    suffix = f"_test_split{split}.txt"
    files = sorted(p for p in ann.glob(f"*{suffix}") if p.is_file())
    if not files:
        files = sorted(p for p in ann.glob(f"*/*{suffix}") if p.is_file())
    if not files:
        raise PrepareError(
            f"no HMDB51 split files '<class>{suffix}' in {ann} (nor in a folder below it); "
            "pass --annotations DIR"
        )
    by_class = {p.name[: -len(suffix)]: p for p in files}
    if len(by_class) != len(files):
        raise PrepareError(f"HMDB51 split files of one class found twice under {ann}")
    classes = sorted(by_class)
    train: list[tuple[str, int, Path | None]] = []
    test: list[tuple[str, int, Path | None]] = []
    for label, name in enumerate(classes):
        path = by_class[name]
        for number, text in _lines(path):
            parts = text.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise PrepareError(
                    f"{path}:{number}: expected 'video.avi 0|1|2' (0 unused, 1 train, 2 test), "
                    f"got {text!r}"
                )
            if parts[1] == "0":
                continue
            rel = f"{name}/{parts[0]}"
            video = root / name / parts[0]
            (train if parts[1] == "1" else test).append(
                (rel, label, video if video.exists() else None)
            )
    splits: dict[str, list[Entry]] = {}
    missing: dict[str, list[str]] = {}
    splits["train"], missing["train"] = _collect(train, root)
    test_entries, missing["test"] = _collect(test, root)
    splits["val"] = test_entries
    splits["test"] = list(test_entries)
    return Prepared(
        "hmdb51",
        classes,
        splits,
        missing,
        notes=[f"split {split}; val.csv = test.csv = the test part (2)"],
        sources=files,
    )


# ----------------------------------------------------------------------------------- folders
def _class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def prepare_folders(root: str | Path, val_fraction: float = 0.1, seed: int = 0) -> Prepared:
    """Lists of a folder-per-class tree (see the module docstring).

    The classes are the sorted names of the class folders that hold at least one video (in any
    split); folders without videos (e.g. a folder of lists) are named in a note and left out.
    Without split folders, each class's videos are shuffled by a generator seeded with ``seed``
    and the class name, and ``round(n * val_fraction)`` of them go to ``val.csv`` (at least one
    when ``val_fraction > 0`` and the class has two or more videos, and never all of them), so
    a class's split does not change when other classes are added. Videos are listed in
    natural name order within each class.
    """
    root = Path(root)
    if not 0.0 <= val_fraction < 1.0:
        raise PrepareError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    if not root.is_dir():
        raise PrepareError(f"data root not found: {root}")
    val_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    notes: list[str] = []
    # split -> class name -> videos
    found: dict[str, dict[str, list[Path]]] = {}
    if (root / "train").is_dir() and val_dir is not None:
        split_dirs = {"train": root / "train", "val": val_dir}
        if (root / "val").is_dir() and (root / "test").is_dir():
            split_dirs["test"] = root / "test"
        for out, folder in split_dirs.items():
            found[out] = {name: find_videos(folder / name) for name in _class_folders(folder)}
        used = ", ".join(f"{d.name}/" for d in split_dirs.values())
        notes.append(f"splits from the folders {used}")
    else:
        found = {"train": {}, "val": {}}
        for name in _class_folders(root):
            videos = find_videos(root / name)
            order = list(range(len(videos)))
            random.Random(f"{seed}:{name}").shuffle(order)
            n_val = round(len(videos) * val_fraction)
            if val_fraction > 0 and len(videos) >= 2:
                n_val = max(1, n_val)
            n_val = min(n_val, max(len(videos) - 1, 0))
            val = set(order[:n_val])
            found["val"][name] = [v for i, v in enumerate(videos) if i in val]
            found["train"][name] = [v for i, v in enumerate(videos) if i not in val]
        notes.append(f"each class split {1 - val_fraction:.0%}/{val_fraction:.0%} with seed {seed}")
    folders = sorted({name for per_class in found.values() for name in per_class})
    classes = [name for name in folders if any(found[s].get(name) for s in found)]
    if not classes:
        raise PrepareError(f"no class folder with videos under {root}")
    empty = [name for name in folders if name not in classes]
    if empty:
        notes.append(f"left out {len(empty)} folder(s) without videos: {', '.join(empty[:10])}")
    splits = {
        out: [
            (_rel(video, root), label)
            for label, name in enumerate(classes)
            for video in per_class.get(name, [])
        ]
        for out, per_class in found.items()
    }
    return Prepared("folders", classes, splits, {}, notes=notes)


# ----------------------------------------------------------------------------------- output
LIST_NAMES = ("train", "val", "test")


def write_prepared(prepared: Prepared, out: str | Path) -> list[Path]:
    """Write ``<split>.csv`` for each split and ``labels.txt`` into ``out``; return the paths.

    Raises:
        PrepareError: an output file would overwrite one of the annotation files that were read
            (Kinetics ships ``train.csv`` / ``test.csv`` annotations under the list names).
    """
    out = Path(out)
    targets = {f"{n}.csv": prepared.splits[n] for n in LIST_NAMES if n in prepared.splits}
    sources = {os.path.realpath(p) for p in prepared.sources}
    for file_name in [*targets, "labels.txt"]:
        if os.path.realpath(out / file_name) in sources:
            raise PrepareError(
                f"writing {out / file_name} would overwrite the annotation file read from there; "
                "pass --out DIR (or keep the annotations in their own folder, --annotations DIR)"
            )
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, entries in targets.items():
        path = out / file_name
        path.write_text("".join(f"{rel} {label}\n" for rel, label in entries), encoding="utf-8")
        written.append(path)
    labels = out / "labels.txt"
    labels.write_text("".join(f"{name}\n" for name in prepared.classes), encoding="utf-8")
    written.append(labels)
    return written


def missing_report(prepared: Prepared, root: Path) -> str:
    """One paragraph: how many videos are missing (per annotation part) and the first paths."""
    parts = ", ".join(f"{part} {len(paths)}" for part, paths in prepared.missing.items() if paths)
    shown: list[str] = []
    for paths in prepared.missing.values():
        for p in paths:
            if p not in shown:
                shown.append(p)
    head = shown[:MISSING_SHOWN]
    more = f" (first {len(head)})" if len(shown) > len(head) else ""
    return (
        f"{prepared.missing_count} video(s) named by the annotations are missing under {root} "
        f"({parts}); left out of the lists. Missing{more}:\n" + "".join(f"  {p}\n" for p in head)
    ).rstrip("\n")


def summary(prepared: Prepared, written: Sequence[Path]) -> str:
    """Videos per list and classes, the notes and the files written."""
    counts = ", ".join(
        f"{name} {len(prepared.splits[name])}" for name in LIST_NAMES if name in prepared.splits
    )
    lines = [f"{prepared.name}: {counts} videos; {len(prepared.classes)} classes"]
    lines += [f"  note: {note}" for note in prepared.notes]
    lines += [f"  wrote {path}" for path in written]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (one sub-command per data set)."""
    parser = argparse.ArgumentParser(
        prog="videomae-prepare",
        description="Write VideoMAE list files (relative/path label) and labels.txt from a data "
        "set's official annotations, and report the videos they name that are missing on disk.",
    )
    sub = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")

    def common(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--root", required=True, type=Path, help="data root (videos under it)")
        p.add_argument("--out", type=Path, help="where the lists go (default: the root)")
        p.add_argument("--strict", action="store_true", help="missing videos are an error (exit 1)")
        return p

    def annotations(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--annotations", type=Path, help="folder of the annotation files (default: the root)"
        )

    for name, text in (
        ("ssv2", "Something-Something V2 (JSON annotations, .webm videos)"),
        ("k400", "Kinetics-400/600/700 (CSV annotations)"),
    ):
        annotations(common(name, text))
    for name, text in (
        ("ucf101", "UCF101 (classInd.txt, trainlist0N.txt, testlist0N.txt)"),
        ("hmdb51", "HMDB51 (<class>_test_splitN.txt)"),
    ):
        p = common(name, text)
        annotations(p)
        p.add_argument("--split", type=int, choices=(1, 2, 3), default=1, help="official split")
    p = common("folders", "a folder-per-class tree (optionally under train/ and val/)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="validation share per class")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-class split")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``videomae-prepare``; returns the exit status (0 ok, 1 missing with --strict, 2 bad
    input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    root: Path = args.root.expanduser()
    out: Path = (args.out or args.root).expanduser()
    ann = getattr(args, "annotations", None)
    ann = ann.expanduser() if ann is not None else root
    try:
        if not root.is_dir():
            raise PrepareError(f"data root not found: {root}")
        if args.dataset == "ssv2":
            prepared = prepare_ssv2(root, ann)
        elif args.dataset == "k400":
            prepared = prepare_k400(root, ann)
        elif args.dataset == "ucf101":
            prepared = prepare_ucf101(root, ann, args.split)
        elif args.dataset == "hmdb51":
            prepared = prepare_hmdb51(root, ann, args.split)
        else:
            prepared = prepare_folders(root, args.val_fraction, args.seed)
        if prepared.missing_count:
            report = missing_report(prepared, root)
            if args.strict:
                print(f"videomae-prepare: error: {report}", file=sys.stderr)
                print("videomae-prepare: nothing written (--strict)", file=sys.stderr)
                return 1
            print(f"videomae-prepare: warning: {report}", file=sys.stderr)
        written = write_prepared(prepared, out)
    except (PrepareError, OSError, UnicodeDecodeError) as error:
        print(f"videomae-prepare: error: {error}", file=sys.stderr)
        return 2
    print(summary(prepared, written))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
