"""Video decoding: open a video file or frame folder and decode only the frames a clip needs.

Backends. Video files are decoded with PyAV (``av``; threads configurable, optional resize at
decode time): it reads the packet index of the video stream (no decoding), seeks to the key
frame before the first needed frame and decodes forward only to the last needed one; on the
way, a frame that is not wanted and that no other frame refers to (an H.264 frame whose slices
have ``nal_ref_idc`` 0, e.g. x264's B-frames outside its pyramid) is not decoded at all, which
leaves the other frames bit for bit as they were (where the packets' timestamps show reordered
frames, i.e. are real presentation times).
On Kinetics-like H.264 this decodes a clip 1.2-1.5x faster than decord (engineering notes).
When PyAV cannot open or decode a file, decord decodes it instead (``backend="auto"``), with a
warning naming the file and PyAV's error, once per file and process. ``backend="decord"`` /
``"pyav"`` force one backend. decord 0.6 fails, for example, on frames 16, 24, 48 or 72 pixels
wide, and returns a wrong frame now and then from AVIs with packed B-frames (``auto`` never
gives AVI files to decord).

``backend="nvdec"`` decodes on the GPU's video engine (NVDEC) through PyAV's FFmpeg ``*_cuvid``
decoders (H.264, HEVC, VP8/VP9, AV1, MPEG-1/2/4, ...; the GPU of ``LOCAL_RANK``): the same
packet index, seek and timestamp rules as the PyAV path, the frames copied back and converted to
RGB on the CPU. Where a codec has no such decoder or it cannot start (no NVIDIA GPU or driver),
the file is decoded as with ``auto``, with one warning per codec and process; AVI files and odd
frame sizes are always decoded on the CPU, and a file NVDEC fails on is decoded again on the CPU
(one warning per file; a file broken for every decoder is reported as broken).

Frame indices are positions in presentation order, as decord counts them (both backends sort
the packet timestamps of the video stream), so both backends return the same frames.

Frame folders (the path is a directory): the frames are the folder's ``.jpg`` / ``.jpeg`` /
``.png`` files in natural name order (``img_2`` before ``img_10``; zero-padded names sort as they
are). A file's *frame number* is the last run of digits in its name (``img_00001.jpg`` -> 1); a
folder whose first file carries no digits is numbered from 0. ``start`` is a frame number: the
clip reads ``total`` files from position ``start - first`` where ``first`` is the number of the
folder's first file (VideoMAE V2 lists say ``1 300`` for ``img_00001.jpg`` ... ``img_00300.jpg``:
position 0). A ``start`` below ``first`` (``0`` in a folder numbered from 1, the default of a
folder-tree record) reads from the first file. Gaps in the numbering are not looked at: after
the first file, frames are positions. Only the needed images are read and decoded
(``torchvision.io.decode_image``).

Errors. Every failure to read a video (missing file, empty file, truncated or corrupt file, not
a video, no video stream, no frames, a decoder error part way, a list window past the end) is
raised as :class:`VideoDecodeError`, naming the file and the cause, so the dataset can decide to
skip the video or stop. Programming errors (a sampler returning indices out of range, a bad
argument) are raised as they are (``ValueError``).

Import order: this module imports PyAV before decord (decord ships an older libvpx; loaded
first, it breaks PyAV's VP9 encoder in the same process).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av  # before decord, see the module docstring
import decord
import numpy as np
import torch
from av.codec.hwaccel import HWAccel

from videomae.data.lists import DIGITS, IMAGE_SUFFIXES, natural_key
from videomae.errors import UserError

__all__ = [
    "BACKENDS",
    "VideoDecodeError",
    "VideoInfo",
    "frame_folder_files",
    "probe",
    "read_frames",
    "video_length",
]

BACKENDS = ("auto", "decord", "pyav", "nvdec")
"""The values of ``backend``."""

_warned_fallback: set[str] = set()  # files decoded by a fallback (warned once) in this process
# codec -> how its NVDEC decoder opened in this process: "shared" (on the GPU's primary CUDA
# context), "own" (a context per decoder), or None (it does not start: decoded on the CPU)
_nvdec_way: dict[str, str | None] = {}
# the last NVDEC decoder opened in this process, kept until the next one is open: it holds a
# reference to the GPU's primary CUDA context, which the driver resets when the last one goes
_nvdec_held: list = []


class _NoNvdecError(Exception):
    """No NVDEC decoder for this file's codec here (decoded as with ``auto`` instead)."""


class VideoDecodeError(UserError, RuntimeError):
    """A video could not be opened or decoded (a user error: the file is named, no traceback).

    Attributes:
        path: the video file (``None`` when rebuilt from a message alone, see below).
        cause: what went wrong, in words (``None`` likewise). Causes start with a fixed phrase
            per kind: ``file not found``, ``file is empty``, ``truncated or corrupt``, ``not a
            video file``, ``no video stream``, ``the video has no frames``, ``decoding fails at
            frame``, ``frame folder``, ``the list asks for``.

    A DataLoader worker's exception reaches the main process rebuilt from its formatted message
    alone, ``VideoDecodeError(message)``; that form is accepted so the type survives (the message
    still names the file and the cause).
    """

    def __init__(self, path: str | Path, cause: str | None = None) -> None:
        if cause is None:
            self.path: str | None = None
            self.cause: str | None = None
            super().__init__(str(path))
            return
        self.path = str(path)
        self.cause = cause
        super().__init__(f"cannot decode video {self.path}: {cause}")

    def __reduce__(self):  # keep (path, cause) when pickled
        if self.cause is None:
            return (type(self), (str(self),))
        return (type(self), (self.path, self.cause))


class _RangeError(VideoDecodeError):
    """A list entry's range lies past the end of the video (raised as it is: no fallback)."""


class _DecordError(Exception):
    """decord could not open or decode a file (the message is decord's reason)."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a video file or frame folder.

    Attributes:
        path: the file or folder.
        num_frames: frames that can be read (those the list's ``start``/``total`` select).
        fps: average frame rate, ``None`` when the container has none (and for frame folders).
        width: frame width in pixels.
        height: frame height in pixels.
        duration_s: ``num_frames / fps``, ``None`` without an fps.
        codec: codec name (``h264``, ``vp9``, ``mpeg4``; ``jpeg`` / ``png`` for frame folders).
        backend: what reads it: ``pyav``, ``decord`` (PyAV cannot) or ``frames`` (a folder).
        declared_frames: frames the container header announces (``None`` when it does not say);
            clearly more than ``num_frames`` means the file is truncated.
    """

    path: str
    num_frames: int
    fps: float | None
    width: int
    height: int
    duration_s: float | None
    codec: str | None
    backend: str
    declared_frames: int | None = None


# ------------------------------------------------------------------------------ small helpers


def _check_args(backend: str, short_side: int | None, start: int, total: int | None) -> None:
    """Raise ``ValueError`` naming a bad keyword argument of :func:`read_frames`."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if short_side is not None and short_side < 1:
        raise ValueError(f"short_side must be >= 1 or None, got {short_side}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if total is not None and total < 1:
        raise ValueError(f"total must be >= 1 or None, got {total}")


def _check_file(path: str | Path) -> Path:
    """The path of an existing, non-empty file, or a :class:`VideoDecodeError` saying why not."""
    file = Path(path)
    if not file.exists():
        raise VideoDecodeError(path, "file not found")
    if not file.is_file():
        raise VideoDecodeError(path, "not a regular file")
    if file.stat().st_size == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    return file


def _container_kind(path: Path) -> str | None:
    """The container a file's first bytes announce (``MP4``, ``Matroska/WebM``, ...), or None."""
    with path.open("rb") as f:
        head = f.read(512)
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"):
        return "MP4/QuickTime"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "MPEG-PS"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "MPEG-TS"
    if head[:3] == b"FLV":
        return "FLV"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:8] == b"\x30\x26\xb2\x75\x8e\x66\xcf\x11":
        return "ASF/WMV"
    return None


def _text_excerpt(path: Path) -> str | None:
    """The file's first line when its start is printable UTF-8 text, else None."""
    with path.open("rb") as f:
        head = f.read(256)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text or not all(c.isprintable() or c in "\r\n\t" for c in text):
        return None
    return text.splitlines()[0][:40] if text.strip() else None


def _unreadable_cause(file: Path, detail: str) -> str:
    """Why FFmpeg cannot open a non-empty file: a truncated/corrupt container or no video.

    ``detail`` is the reader's own message (e.g. ``pyav: Invalid data found ...``).
    """
    kind = _container_kind(file)
    if kind is not None:
        return f"truncated or corrupt {kind} file (the container cannot be read; {detail})"
    text = _text_excerpt(file)
    if text is not None:
        return f"not a video file (it holds text: {text!r})"
    return f"not a video file (no known container signature; {detail})"


def _target_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """``(height, width)`` with the short side ``short_side`` and the aspect ratio kept."""
    if height <= width:
        return short_side, max(1, round(width * short_side / height))
    return max(1, round(height * short_side / width)), short_side


def _window(length: int, position: int, total: int | None, path: str | Path, start: int):
    """``(first position, frame count)`` of the frames a list entry selects; checks the bounds."""
    if position >= length:
        raise _RangeError(
            path, f"the list asks for frames from {start}, but there are only {length} frames"
        )
    available = length - position
    if total is None:
        return position, available
    if total > available:
        raise _RangeError(
            path,
            f"the list asks for {total} frames from frame {start}, only {available} are there "
            f"({length} in all)",
        )
    return position, total


def _plan(
    sampler: Callable[[int], np.ndarray], count: int, offset: int, path: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """Ask the sampler for indices of a ``count``-frame clip; return the sorted distinct
    absolute frame positions to decode and, per requested index, its row among them."""
    indices = np.asarray(sampler(count), dtype=np.int64)
    if indices.ndim != 1 or indices.size == 0:
        raise ValueError(f"sampler must return a non-empty 1-D index array, got {indices.shape}")
    if indices.min() < 0 or indices.max() >= count:
        raise ValueError(
            f"sampler returned indices outside [0, {count - 1}] for {path}: {indices.tolist()}"
        )
    unique, inverse = np.unique(indices, return_inverse=True)
    return unique + offset, inverse.reshape(-1)


def _in_order(frames: torch.Tensor | Sequence[np.ndarray], inverse: np.ndarray) -> torch.Tensor:
    """The requested frames ``frames[inverse]`` (decoded rows, a tensor or a list of arrays) as
    one new contiguous uint8 ``(K, H, W, 3)``: whole rows copied once. (Indexing a uint8 tensor
    with an index tensor took 4 ms for 16 frames of 340x256 on one core; this 0.5-0.7 ms.)"""
    rows = [frames[i] for i in inverse.tolist()]
    if isinstance(frames, torch.Tensor):
        return torch.stack(rows)
    return torch.from_numpy(np.stack(rows))


def _to_tensor(batch: object) -> torch.Tensor:
    """decord batch (native NDArray, or a torch tensor under a torch bridge) -> torch tensor."""
    if isinstance(batch, torch.Tensor):
        return batch
    if hasattr(batch, "asnumpy"):
        return torch.from_numpy(batch.asnumpy())
    return torch.from_numpy(np.asarray(batch))


def _warn_fallback(path: str | Path, pyav_error: VideoDecodeError) -> None:
    """Warn once per file and process that decord decodes a file PyAV could not."""
    key = str(path)
    if key in _warned_fallback:
        return
    _warned_fallback.add(key)
    warnings.warn(
        f"PyAV cannot read {key} ({pyav_error.cause}); decoding it with decord instead",
        RuntimeWarning,
        stacklevel=3,
    )


# ------------------------------------------------------------------------------ frame folders


def frame_folder_files(folder: str | Path) -> list[str]:
    """Names of a frame folder's images (``.jpg``, ``.jpeg``, ``.png``) in natural name order."""
    with os.scandir(folder) as it:
        names = [
            e.name
            for e in it
            if not e.name.startswith(".")
            and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
            and e.is_file()
        ]
    return sorted(names, key=natural_key)


def _frame_number(name: str) -> int | None:
    """The last run of digits in a file name without its suffix (``img_00012.jpg`` -> 12)."""
    digits = DIGITS.findall(os.path.splitext(name)[0])
    return int(digits[-1]) if digits else None


def _folder_window(folder: Path, start: int, total: int | None) -> tuple[list[str], int, int]:
    """Image names of a frame folder and the ``(position, count)`` a list entry selects."""
    names = frame_folder_files(folder)
    if not names:
        raise VideoDecodeError(folder, "frame folder has no .jpg/.jpeg/.png images")
    first = _frame_number(names[0]) or 0
    position, count = _window(len(names), max(start - first, 0), total, folder, start)
    return names, position, count


def _decode_image(file: Path) -> torch.Tensor:
    """One image file -> uint8 ``(3, H, W)`` RGB."""
    from torchvision.io import ImageReadMode, decode_image

    data = torch.frombuffer(bytearray(file.read_bytes()), dtype=torch.uint8)
    if data.numel() == 0:
        raise VideoDecodeError(file.parent, f"frame folder image {file.name} is empty (0 bytes)")
    try:
        return decode_image(data, mode=ImageReadMode.RGB)
    except Exception as err:
        raise VideoDecodeError(
            file.parent, f"frame folder image {file.name} cannot be decoded ({err})"
        ) from err


def _resize_chw(frames: torch.Tensor, short_side: int | None) -> torch.Tensor:
    """Resize uint8 ``(K, 3, H, W)`` frames so the short side is ``short_side`` (bilinear,
    antialiased); unchanged when ``short_side`` is None or already met."""
    if short_side is None:
        return frames
    height, width = frames.shape[-2:]
    size = _target_size(height, width, short_side)
    if size == (height, width):
        return frames
    from torchvision.transforms.v2 import functional as F

    return F.resize(frames, list(size), antialias=True)


def _read_folder(
    folder: Path,
    sampler: Callable[[int], np.ndarray],
    short_side: int | None,
    start: int,
    total: int | None,
) -> torch.Tensor:
    """Decode the needed images of a frame folder -> uint8 ``(K, H, W, 3)``."""
    names, position, count = _folder_window(folder, start, total)
    unique, inverse = _plan(sampler, count, position, folder)
    images = [_decode_image(folder / names[i]) for i in unique.tolist()]
    sizes = {tuple(im.shape[-2:]) for im in images}
    if len(sizes) > 1:
        raise VideoDecodeError(folder, f"frame folder images differ in size: {sorted(sizes)}")
    frames = _resize_chw(torch.stack(images), short_side)
    return _in_order(frames.permute(0, 2, 3, 1), inverse)


# ---------------------------------------------------------------------------------- decord


def _decord_reader(file: Path, num_threads: int, size: tuple[int, int] | None):
    """Open ``file`` with decord on the CPU (at ``size = (height, width)`` when given)."""
    height, width = size if size is not None else (-1, -1)
    try:
        reader = decord.VideoReader(
            str(file), ctx=decord.cpu(0), width=width, height=height, num_threads=num_threads
        )
        length = len(reader)
    except Exception as err:  # decord raises RuntimeError / DECORDError with ffmpeg's reason
        raise _DecordError(f"cannot open it: {_short(err)}") from err
    if length < 1:
        raise _DecordError("it reports no frames")
    return reader, length


def _short(err: BaseException) -> str:
    """An exception's message on one line, without decord's source-location prefix or the file
    name PyAV appends."""
    text = getattr(err, "strerror", None) or str(err)
    text = " ".join(str(text).split())
    text = re.sub(r"\[[\d:]+\] \S+:\d+: ", "", text)
    return text[:300] or type(err).__name__


@functools.lru_cache(maxsize=1 << 16)
def _source_size(file: str) -> tuple[int, int] | None:
    """``(height, width)`` of a video stream from the container header (no decoding; about
    2 ms, cached per file for the next epochs)."""
    try:
        with av.open(file) as container:
            if not container.streams.video:
                return None
            ctx = container.streams.video[0].codec_context
            return (ctx.height, ctx.width) if ctx.height > 0 and ctx.width > 0 else None
    except Exception:
        return None


def _read_decord(
    file: Path,
    sampler: Callable[[int], np.ndarray],
    num_threads: int,
    short_side: int | None,
    start: int,
    total: int | None,
    plan: tuple[np.ndarray, np.ndarray, int] | None = None,
) -> torch.Tensor:
    """Decode with decord; decord's own failures raise :class:`_DecordError`. ``plan`` reuses
    PyAV's frame choice (when decord counts the same frames), so a fallback decodes the clip
    PyAV was asked for without asking the sampler again."""
    size = None
    if short_side is not None:
        source = _source_size(str(file))
        if source is not None:
            size = _target_size(*source, short_side)
            size = None if size == source else size
    reader, length = _decord_reader(file, num_threads, size)
    try:
        if plan is not None and plan[2] == length:
            unique, inverse = plan[0], plan[1]
        else:
            position, count = _window(length, start, total, file, start)
            unique, inverse = _plan(sampler, count, position, file)
        try:
            batch = _to_tensor(reader.get_batch(unique.tolist()))
        except Exception as err:
            raise _DecordError(
                f"decoding frames {unique.tolist()} of {length} failed: {_short(err)}"
            ) from err
    finally:
        del reader
    if batch.ndim != 4 or batch.shape[0] != unique.size or batch.shape[-1] != 3:
        raise _DecordError(
            f"it returned shape {tuple(batch.shape)}, expected ({unique.size}, H, W, 3)"
        )
    if short_side is not None and size is None:  # size unknown before decoding: resize now
        batch = _resize_chw(batch.permute(0, 3, 1, 2), short_side).permute(0, 2, 3, 1)
    return _in_order(batch, inverse)


# ------------------------------------------------------------------------------------ PyAV


def _open_av(file: Path):
    """Open ``file`` with PyAV; a failure becomes a :class:`VideoDecodeError` with a cause."""
    try:
        return av.open(str(file))
    except Exception as err:
        raise VideoDecodeError(file, _unreadable_cause(file, f"pyav: {_short(err)}")) from err


def _video_stream(container, file: Path):
    """The first video stream, or a ``no video stream`` error listing what the file holds."""
    if container.streams.video:
        return container.streams.video[0]
    held = ", ".join(f"{s.type}/{s.codec_context.name}" for s in container.streams) or "nothing"
    raise VideoDecodeError(file, f"no video stream (the file holds: {held})")


@dataclass
class _PacketIndex:
    """Presentation timestamps of a video stream's frames, in order, and its key frames."""

    pts: list[int] | None  # None when the packets carry no timestamps
    keyframes: list[int]  # positions (into pts order) of key frames
    count: int
    # the timestamps go back somewhere in packet (decode) order: they are presentation times of
    # a stream with reordered frames, not decode times written as presentation times
    reordered: bool = False


def _packet_index(container, stream, file: Path) -> _PacketIndex:
    """Read the packet index of ``stream`` (demuxing only, no decoding)."""
    stamps: list[tuple[int, bool]] = []
    missing = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            missing = missing or stamp is None
            stamps.append((stamp if stamp is not None else len(stamps), packet.is_keyframe))
    except Exception as err:
        if not stamps:
            raise VideoDecodeError(file, _unreadable_cause(file, f"pyav: {_short(err)}")) from err
        # a read error part way (truncated file): index what was read
    if missing:
        return _PacketIndex(None, [0], len(stamps))
    reordered = any(b < a for (a, _), (b, _) in itertools.pairwise(stamps))
    stamps.sort()
    keyframes = [i for i, (_, key) in enumerate(stamps) if key] or [0]
    return _PacketIndex([s for s, _ in stamps], keyframes, len(stamps), reordered)


def _frame_index(container, stream, file: Path) -> _PacketIndex:
    """The packet index of ``stream``; a video without frames is a :class:`VideoDecodeError`."""
    index = _packet_index(container, stream, file)
    if index.count == 0:
        raise VideoDecodeError(file, _no_frames_cause(container, stream))
    return index


def _no_frames_cause(container, stream) -> str:
    """Cause for a video stream without frames: a truncated file when the header promised some."""
    declared = _declared_frames(container, stream, None)
    if declared:
        return f"truncated or corrupt: the header announces {declared} frames, none can be read"
    return "the video has no frames"


def _pyav_frames(
    file: Path,
    unique: np.ndarray,
    container,
    stream,
    index: _PacketIndex,
    size: tuple[int, int] | None,
    decoder=None,
) -> list[np.ndarray]:
    """Decode the frames at the sorted positions ``unique``: seek to the key frame before the
    first, decode forward to the last. Returns one RGB ``(H, W, 3)`` array per position.
    ``decoder``: a codec context to decode with (NVDEC) instead of the stream's own.

    Decoded frames are placed by their timestamps; when those do not match the packet index,
    come out of order (AVI files with packed B-frames carry such timestamps) or are missing,
    frames are counted from the start of the stream instead (as decord does for those files).
    """
    got: dict[int, np.ndarray] = {}
    by_time = index.pts is not None and _decode_range(
        file, unique, container, stream, index, size, got, by_time=True, decoder=decoder
    )
    if not by_time:
        got.clear()
        if decoder is not None and index.pts is not None:  # after a first pass: start afresh
            decoder.flush_buffers()
        _decode_range(
            file, unique, container, stream, index, size, got, by_time=False, decoder=decoder
        )
    missing = sorted(set(unique.tolist()) - set(got))
    if missing:
        raise VideoDecodeError(
            file,
            f"decoding fails at frame {missing[0]} of {index.count}: the decoder stops before it",
        )
    return [got[i] for i in unique.tolist()]


# decoders that honour ``skip_frame`` packet by packet and whose "non-reference" is exact: an
# H.264 frame whose slices all have nal_ref_idc 0. Not VP9 (FFmpeg's decoder ignores the field),
# not VP8 (a skipped frame's segmentation map can still reach later frames), not HEVC (a
# sub-layer non-reference picture may be referenced from a higher temporal layer), not dav1d
# (it reads the field only when it opens)
_SKIPS_NONREF = frozenset({"h264"})


def _decoded(container, stream, decoder, keep: set[int] | None = None):
    """The frames of ``stream`` from where the container was sought: decoded by the stream's
    own decoder, or by ``decoder`` (a codec context) fed the demuxed packets. ``keep``: the
    timestamps of the wanted frames; a frame outside it that no other frame refers to is not
    decoded at all (where the decoder can tell, :data:`_SKIPS_NONREF`), which leaves the
    others bit for bit as they were."""
    context = decoder if decoder is not None else stream.codec_context
    skip = keep is not None and context.codec.name in _SKIPS_NONREF
    context.skip_frame = "DEFAULT"
    for packet in container.demux(stream):
        if skip:
            wanted = packet.pts is None or packet.pts in keep
            context.skip_frame = "DEFAULT" if wanted else "NONREF"
        yield from context.decode(packet)  # the last, empty packet drains the decoder


@functools.cache
def _cuvid_decoders() -> dict[int, str]:
    """Codec id -> the name of FFmpeg's NVDEC decoder for it (``h264_cuvid``, ``av1_cuvid``,
    ``mpeg2_cuvid``, ...) in PyAV's FFmpeg."""
    names = [n for n in av.codecs_available if n.endswith("_cuvid")]
    return {av.Codec(n, "r").id: n for n in names}


def _nvdec_name(codec_context) -> str | None:
    """The NVDEC decoder of a stream's codec (by codec id: an AV1 stream's decoder is named
    ``libdav1d``, its NVDEC one ``av1_cuvid``), or None."""
    return _cuvid_decoders().get(codec_context.codec.id)


def _open_nvdec(name: str, source, shared: bool):
    """Open NVDEC decoder ``name`` for a stream like ``source`` on this process's GPU
    (``LOCAL_RANK``). ``shared``: on the GPU's primary CUDA context (FFmpeg's ``primary_ctx``),
    kept alive between files by :data:`_nvdec_held`; it does not start where the process has
    already made that context current with other flags (torch's, e.g. ``num_workers=0``). Else
    the decoder creates a CUDA context of its own, for each opened file."""
    gpu = os.environ.get("LOCAL_RANK", "0")
    hwaccel = None
    if shared:
        options = {"primary_ctx": "1"}
        hwaccel = HWAccel("cuda", device=gpu, options=options, allow_software_fallback=False)
    decoder = av.CodecContext.create(name, "r", hwaccel=hwaccel)
    decoder.extradata = source.extradata
    # the real size and pixel format, so that open() checks what the GPU can decode
    decoder.width, decoder.height, decoder.pix_fmt = source.width, source.height, source.pix_fmt
    if name.endswith("_cuvid") and not shared:
        decoder.options = {"gpu": gpu}
    decoder.open()
    return decoder


def _nvdec_decoder(file: Path, stream):
    """An opened NVDEC codec context for ``stream``; :class:`_NoNvdecError` when this process has
    none for its codec (warned once per codec) or the file is one NVDEC does not take: AVI
    (MPEG-4 with packed B-frames and placeholder packets) or odd frame sizes (NVDEC rounds them
    up), both decoded on the CPU. Opened on the shared CUDA context where that starts, else with
    a context of its own (each way tried once per codec and process)."""
    source = stream.codec_context
    codec = source.name
    if _container_kind(file) == "AVI" or source.width % 2 or source.height % 2:
        raise _NoNvdecError(codec)
    opened = codec in _nvdec_way  # before, for another file of this codec, in this process
    if opened and _nvdec_way[codec] is None:
        raise _NoNvdecError(codec)
    name = _nvdec_name(source)
    if name is None:
        causes = [f"PyAV's FFmpeg has no NVDEC decoder for {codec}"]
    else:
        causes = []
        # the way that worked before; the first time, the shared context, then a context of its own
        for shared in (_nvdec_way[codec] == "shared",) if opened else (True, False):
            try:
                decoder = _open_nvdec(name, source, shared)
            except Exception as err:
                how = "on the shared CUDA context" if shared else "with a context of its own"
                causes.append(f"{name} does not start {how}: {_short(err)}")
                continue
            _nvdec_way[codec] = "shared" if shared else "own"
            _nvdec_held[:] = [decoder]  # the previous one is freed only now
            return decoder
    if opened:  # opened for other files: this one it does not take
        raise VideoDecodeError(file, f"NVDEC does not open it ({'; '.join(causes)})")
    _nvdec_way[codec] = None
    warnings.warn(
        f"data.backend=nvdec: no NVDEC for {codec} videos here ({'; '.join(causes)}); they are "
        "decoded on the CPU as with backend=auto",
        RuntimeWarning,
        stacklevel=2,
    )
    raise _NoNvdecError(codec)


def _decode_range(
    file: Path,
    unique: np.ndarray,
    container,
    stream,
    index: _PacketIndex,
    size: tuple[int, int] | None,
    got: dict[int, np.ndarray],
    by_time: bool,
    decoder=None,
) -> bool:
    """One decoding pass filling ``got`` (position -> RGB array). ``by_time``: seek to the key
    frame before the first wanted position and place frames by timestamp; returns False when no
    decoded timestamp matched the index or the timestamps went backwards. Otherwise: decode from
    the start, counting frames."""
    wanted = set(unique.tolist())
    first, last = int(unique[0]), int(unique[-1])
    height, width = size if size is not None else (None, None)
    matched = False
    if by_time:
        assert index.pts is not None
        position_of = {p: i for i, p in enumerate(index.pts)}
        key = max((k for k in index.keyframes if k <= first), default=0)
        seek_to = index.pts[key]
        # frames no other refers to are skipped only where the timestamps are the frames' own
        # presentation times: this pass tells decode-order timestamps (written as presentation
        # times, or AVI's packed B-frames) by the decoded frames' timestamps going back, which
        # a skipped frame would not show
        trusted = index.reordered and _container_kind(file) != "AVI"
        keep = {index.pts[i] for i in wanted} if trusted else None
    else:
        position_of, keep, seek_to = None, None, 0
    position = -1
    try:
        container.seek(seek_to, stream=stream, backward=True, any_frame=False)
        for frame in _decoded(container, stream, decoder, keep):
            if position_of is not None:
                found = position_of.get(frame.pts)
                if found is None:
                    continue
                if found < position:  # timestamps out of presentation order (AVI): count
                    return False
                position, matched = found, True
            else:
                position += 1
            if position in wanted:
                # one scaling thread: PyAV >= 17 scales on a pool of threads by default (one
                # per CPU), and with PyAV 19 a loader worker forked from a process that had
                # converted a frame so waits forever for threads it does not have
                got[position] = frame.to_ndarray(
                    format="rgb24", width=width, height=height, interpolation="BICUBIC", threads=1
                )
            if position >= last:
                break
    except Exception as err:
        pending = min(wanted - set(got), default=last)
        raise VideoDecodeError(
            file, f"decoding fails at frame {pending} of {index.count} (pyav: {_short(err)})"
        ) from err
    return matched or not by_time


def _read_pyav(
    file: Path,
    sampler: Callable[[int], np.ndarray],
    num_threads: int,
    short_side: int | None,
    start: int,
    total: int | None,
    plan_out: list | None = None,
    nvdec: bool = False,
) -> torch.Tensor:
    """Decode with PyAV. The plan (unique positions, inverse, the frame count) is appended to
    ``plan_out`` so that a decord fallback decodes the same frames; ``nvdec``: with the codec's
    NVDEC decoder (:class:`_NoNvdecError` where there is none)."""
    with _open_av(file) as container:
        stream = _video_stream(container, file)
        decoder = _nvdec_decoder(file, stream) if nvdec else None
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = num_threads
        index = _frame_index(container, stream, file)
        position, count = _window(index.count, start, total, file, start)
        unique, inverse = _plan(sampler, count, position, file)
        if plan_out is not None:
            plan_out.append((unique, inverse, index.count))
        size = None
        if short_side is not None:
            ctx = stream.codec_context
            size = _target_size(ctx.height, ctx.width, short_side) if ctx.height > 0 else None
        frames = _pyav_frames(file, unique, container, stream, index, size, decoder)
    sizes = sorted({f.shape for f in frames})
    if len(sizes) > 1:
        raise VideoDecodeError(file, f"the frame size changes within the clip: {sizes}")
    if short_side is not None and size is None:  # size unknown before decoding: resize now
        batch = torch.from_numpy(np.stack(frames))
        frames = _resize_chw(batch.permute(0, 3, 1, 2), short_side).permute(0, 2, 3, 1)
    return _in_order(frames, inverse)


# ------------------------------------------------------------------------------- public API


def read_frames(
    path: str | Path,
    sampler: Callable[[int], np.ndarray],
    num_threads: int = 1,
    *,
    short_side: int | None = None,
    backend: str = "auto",
    start: int = 0,
    total: int | None = None,
) -> torch.Tensor:
    """Decode the frames of a clip from a video file or a frame folder.

    Opens the video, asks ``sampler(num_video_frames)`` for the frame indices and decodes only
    those frames: each distinct frame once (sorted, then gathered into the requested order), so
    a sampler may return several views concatenated, with repeats, in any order.

    Args:
        path: the video file, or a frame folder (a directory of images, see the module
            docstring).
        sampler: maps the number of frames of the clip's range to the indices to decode, a 1-D
            integer array of length ``K`` with values in ``[0, num_video_frames - 1]``, e.g.
            ``lambda n: dense_indices(n, 16, 4, rng)``.
        num_threads: decoder threads (``0`` lets FFmpeg choose; unused for frame folders).
        short_side: resize at decode time so that the short side of a frame is ``short_side``
            pixels, keeping the aspect ratio (``None``: original size). decord scales inside
            FFmpeg (bicubic) at the size computed from the container header; PyAV likewise;
            frame folders are resized after decoding (bilinear, antialiased).
        backend: ``auto`` (PyAV, decord when PyAV fails on the file, except for AVI files,
            where decord 0.6 returns a wrong frame now and then), ``decord``, ``pyav`` or
            ``nvdec`` (the GPU's decoder through PyAV, ``auto`` where there is none).
        start: first frame of the range: a frame number for frame folders (see the module
            docstring), a frame position for video files (``0``: the beginning).
        total: frames in the range (``None``: to the end).

    Returns:
        uint8 tensor ``(K, H, W, 3)``, RGB.

    Raises:
        VideoDecodeError: the video cannot be read (the cause says why: missing, empty,
            truncated, not a video, no video stream, no frames, decoding fails at frame k, a
            range past the end); with ``auto``, a file neither backend reads names both causes.
        ValueError: a bad argument, or the sampler returned indices that are empty or out of
            range.
    """
    _check_args(backend, short_side, start, total)
    if Path(path).is_dir():
        return _read_folder(Path(path), sampler, short_side, start, total)
    file = _check_file(path)
    if backend == "nvdec":
        try:
            return _read_pyav(file, sampler, num_threads, short_side, start, total, nvdec=True)
        except _NoNvdecError:
            backend = "auto"
        except VideoDecodeError as err:  # NVDEC refused this file, or the file is broken
            frames = read_frames(
                path, sampler, num_threads, short_side=short_side, start=start, total=total
            )
            if str(file) not in _warned_fallback:
                _warned_fallback.add(str(file))
                warnings.warn(
                    f"data.backend=nvdec: {file} did not decode on NVDEC ({err.cause}); it is "
                    "decoded on the CPU",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return frames
    if backend == "auto" and _container_kind(file) == "AVI":
        backend = "pyav"  # decord returns wrong frames from AVIs with packed B-frames (UCF101)
    if backend == "decord":
        try:
            return _read_decord(file, sampler, num_threads, short_side, start, total)
        except _DecordError as err:
            raise VideoDecodeError(path, _decord_cause(file, err)) from err
    plan: list = []
    try:
        return _read_pyav(file, sampler, num_threads, short_side, start, total, plan)
    except VideoDecodeError as err:
        if backend == "pyav" or type(err) is not VideoDecodeError:  # e.g. a sampler's own
            raise
        pyav_error = err
    try:  # auto: decord, for a file PyAV does not read
        frames = _read_decord(
            file, sampler, num_threads, short_side, start, total, plan[0] if plan else None
        )
    except _DecordError as err:
        raise VideoDecodeError(path, f"{pyav_error.cause} [decord: {err}]") from pyav_error
    _warn_fallback(path, pyav_error)
    return frames


def _decord_cause(file: Path, err: _DecordError) -> str:
    """Cause for ``backend="decord"``: decord's message, classified like PyAV's when it could
    not open the file."""
    message = str(err)
    if message.startswith("cannot open it"):
        if "cannot find video stream" in message:
            return f"no video stream (decord: {message})"
        return _unreadable_cause(file, f"decord: {message}")
    if message.startswith("decoding frames"):
        return f"decoding fails (decord: {message})"
    return f"decord: {message}"


def video_length(
    path: str | Path,
    num_threads: int = 1,
    *,
    backend: str = "auto",
    start: int = 0,
    total: int | None = None,
) -> int:
    """Number of frames of a video file or frame folder, without decoding frames.

    With ``start`` / ``total`` (list entries), the number of frames of that range, checked to
    lie inside the video. ``backend`` as in :func:`read_frames`.

    Raises:
        VideoDecodeError: the video cannot be opened, has no frames or is shorter than the range.
    """
    _check_args(backend, None, start, total)
    if Path(path).is_dir():
        return _folder_window(Path(path), start, total)[2]
    file = _check_file(path)
    length = None
    if backend != "decord":
        try:
            length = _pyav_length(file)
        except VideoDecodeError as err:
            if backend != "auto" or _container_kind(file) == "AVI":
                raise
            pyav_error = err
    if length is None:  # decord, or auto on a file PyAV does not read
        try:
            reader, length = _decord_reader(file, num_threads, None)
            del reader
        except _DecordError as err:
            if backend == "decord":
                raise VideoDecodeError(path, _decord_cause(file, err)) from err
            raise VideoDecodeError(path, f"{pyav_error.cause} [decord: {err}]") from pyav_error
    return _window(length, start, total, path, start)[1]


def _pyav_length(file: Path) -> int:
    """The number of frames PyAV's packet index counts (no decoding)."""
    with _open_av(file) as container:
        return _frame_index(container, _video_stream(container, file), file).count


def _declared_frames(container, stream, fps: float | None) -> int | None:
    """Frames the container header announces: the stream's frame count, else its duration (or
    the container's, when the video is its only stream) times the frame rate."""
    if stream.frames and stream.frames > 0:
        return int(stream.frames)
    rate = fps
    if rate is None and stream.average_rate:
        rate = float(stream.average_rate)
    if not rate:
        return None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration and len(container.streams) == 1:
        seconds = container.duration / av.time_base
    else:
        return None
    return round(seconds * rate) if seconds > 0 else None


def probe(
    path: str | Path, num_threads: int = 1, *, start: int = 0, total: int | None = None
) -> VideoInfo:
    """Read a video's metadata from its container (no decoding of frames; frame folders: the
    first image) .

    The frame count is PyAV's packet count (the one :func:`read_frames` uses), or decord's when
    PyAV cannot index the file (``backend="decord"``). With ``start`` / ``total`` the count is
    that of the range (checked like :func:`read_frames` does).

    Raises:
        VideoDecodeError: missing, empty, truncated, not a video, no video stream (cause ``no
            video stream (the file holds: audio/aac)``), no frames, a range past the end.
    """
    _check_args("auto", None, start, total)
    if Path(path).is_dir():
        folder = Path(path)
        names, position, count = _folder_window(folder, start, total)
        image = _decode_image(folder / names[position])
        suffix = os.path.splitext(names[position])[1].lower()
        return VideoInfo(
            path=str(path),
            num_frames=count,
            fps=None,
            width=int(image.shape[-1]),
            height=int(image.shape[-2]),
            duration_s=None,
            codec="png" if suffix == ".png" else "jpeg",
            backend="frames",
        )
    file = _check_file(path)
    with _open_av(file) as container:
        stream = _video_stream(container, file)
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        width, height, codec = int(ctx.width), int(ctx.height), ctx.name
        declared = _declared_frames(container, stream, fps)
        backend = "pyav"
        try:
            length = _frame_index(container, stream, file).count
        except VideoDecodeError as err:
            if _container_kind(file) == "AVI":
                raise
            pyav_error, length = err, None
    if length is None or fps is None or width <= 0 or height <= 0:
        try:  # decord's count for a file PyAV does not index; its rate and size where PyAV's lack
            reader, decord_length = _decord_reader(file, num_threads, None)
            if length is None:
                length, backend = decord_length, "decord"
            if fps is None:
                decord_fps = float(reader.get_avg_fps())
                fps = decord_fps if math.isfinite(decord_fps) and decord_fps > 0 else None
            if width <= 0 or height <= 0:
                height, width = (int(s) for s in reader[0].shape[:2])
            del reader
        except _DecordError as err:
            if length is None:
                raise VideoDecodeError(path, f"{pyav_error.cause} [decord: {err}]") from pyav_error
    count = _window(length, start, total, path, start)[1]
    return VideoInfo(
        path=str(path),
        num_frames=count,
        fps=fps,
        width=width,
        height=height,
        duration_s=count / fps if fps else None,
        codec=codec,
        backend=backend,
        declared_frames=declared,
    )
