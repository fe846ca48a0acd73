"""Bounded, safe reads of files that come from outside (specs, recordings, skills, logs, config).

Every read of such a file goes through ``read_bounded``:

* only a regular file is read: a FIFO, a device (``/dev/zero``), a socket or a folder is
  refused, and the file is opened non-blocking so a FIFO with no writer cannot hang us;
* a symbolic link is followed only when its target stays inside ``root`` (by default the
  folder holding the path): a recording's ``manifest.json`` may not point at ``/etc/shadow``
  or ``/dev/zero``;
* the size cap is checked while reading, not only with ``stat`` (which says 0 for devices and
  can change between the check and the read), so at most ``limit + 1`` bytes are ever held.

``check_image_size`` reads an image's dimensions from its header, before any pixel is
decoded, so a 40000 x 40000 PNG is refused in microseconds instead of allocating gigabytes.

This module imports nothing of ours but the shared error tree, so every layer may use it.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings
from pathlib import Path

from agentcorp.errors import ConfigError

__all__ = [
    "MAX_IMAGE_PIXELS",
    "UnsafeRead",
    "check_image_size",
    "read_bounded",
    "read_text_bounded",
]

# 40 megapixels: twice an 8K screen. Frames and screenshots are never bigger than a screen.
MAX_IMAGE_PIXELS = 40_000_000
_CHUNK = 1 << 20


class UnsafeRead(ConfigError):
    """A file that is not a bounded regular file where we expected one. Exit 2 by default.

    Callers usually re-raise it as their own input error (``ConfigError``,
    ``RecordingError``) with ``str(exc)``, which already names the path.
    """


def _inside(target: Path, root: Path) -> bool:
    try:
        target.relative_to(root)
    except ValueError:
        return False
    return True


def _check_link(path: Path, root: Path | None) -> None:
    """Refuse ``path`` when it (or a link on its way) resolves outside ``root``."""
    base = (root if root is not None else path.parent).resolve()
    try:
        real = path.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise UnsafeRead(f"{path}: cannot resolve: {exc}") from None
    if not _inside(real, base):
        raise UnsafeRead(f"{path}: is a link to {real}, outside {base}; not followed")


def read_bounded(
    path: str | os.PathLike[str],
    limit: int,
    *,
    root: str | os.PathLike[str] | None = None,
    what: str = "file",
) -> bytes:
    """The bytes of regular file ``path``, at most ``limit`` of them, or ``UnsafeRead``.

    ``FileNotFoundError`` passes through unchanged (callers often treat a missing file as a
    normal case); every other refusal or I/O failure is an ``UnsafeRead`` naming the path.
    """
    p = Path(path)
    _check_link(p, Path(root) if root is not None else None)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO or socket nobody writes to
            raise UnsafeRead(f"{p}: is not a regular file") from None
        raise UnsafeRead(f"{p}: cannot read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise UnsafeRead(f"{p}: is {kind}")
        if st.st_size > limit:
            raise UnsafeRead(f"{p}: {what} is {st.st_size:,} bytes, over the {limit:,}-byte limit")
        os.set_blocking(fd, True)
        buf = io.BytesIO()
        while buf.tell() <= limit:
            try:
                chunk = os.read(fd, min(_CHUNK, limit + 1 - buf.tell()))
            except OSError as exc:
                raise UnsafeRead(f"{p}: cannot read: {exc.strerror or exc}") from None
            if not chunk:
                break
            buf.write(chunk)
        if buf.tell() > limit:
            raise UnsafeRead(f"{p}: {what} grew past the {limit:,}-byte limit while being read")
        return buf.getvalue()
    finally:
        os.close(fd)


def read_text_bounded(
    path: str | os.PathLike[str],
    limit: int,
    *,
    root: str | os.PathLike[str] | None = None,
    what: str = "file",
) -> str:
    """``read_bounded`` decoded as UTF-8; bad UTF-8 is an ``UnsafeRead`` naming the offset."""
    data = read_bounded(path, limit, root=root, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeRead(f"{path}: not UTF-8 text (byte {exc.start})") from None


def check_image_size(
    data: bytes | Path, *, max_pixels: int = MAX_IMAGE_PIXELS, where: str = "image"
) -> tuple[int, int]:
    """(width, height) of the PNG/JPEG/... in ``data``, read from its header only.

    ``UnsafeRead`` when it is not an image Pillow knows or when it has more than
    ``max_pixels`` pixels. Nothing is decoded: safe on any input.
    """
    from PIL import Image, UnidentifiedImageError

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        # Pillow's own bomb check fires at open for huge headers; ours is stricter anyway.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                w, h = img.size
    except Image.DecompressionBombError:
        raise UnsafeRead(f"{where}: image dimensions over {max_pixels:,} pixels") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise UnsafeRead(f"{where}: not a readable image ({exc})") from None
    if w < 1 or h < 1 or w * h > max_pixels:
        raise UnsafeRead(f"{where}: image is {w}x{h}, over the {max_pixels:,}-pixel limit")
    return w, h
