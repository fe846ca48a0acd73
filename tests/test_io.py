"""The bounded reader (agentcorp._io): regular files only, links kept in their folder, caps."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from agentcorp._io import UnsafeRead, check_image_size, read_bounded, read_text_bounded

ROOT = Path(__file__).resolve().parents[1]


def png_header(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels (its data is one empty IDAT: never decodable)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def test_regular_file_within_the_cap(tmp_path: Path) -> None:
    f = tmp_path / "a.json"
    f.write_bytes(b"x" * 100)
    assert read_bounded(f, 100) == b"x" * 100
    with pytest.raises(UnsafeRead, match="over the 99-byte limit"):
        read_bounded(f, 99)
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "missing", 10)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_devices_are_refused(device: str) -> None:
    with pytest.raises(UnsafeRead, match="not a regular file"):
        read_bounded(device, 1 << 20, root="/dev")


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "manifest.json"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeRead, match="not a regular file"):
        read_bounded(fifo, 1 << 20)


def test_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeRead, match="is a folder"):
        read_bounded(tmp_path, 10, root=tmp_path.parent)


def test_links_are_followed_only_inside_their_folder(tmp_path: Path) -> None:
    (tmp_path / "inside.txt").write_text("ok")
    (tmp_path / "link.txt").symlink_to(tmp_path / "inside.txt")
    assert read_text_bounded(tmp_path / "link.txt", 10) == "ok"
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("secret")
    (tmp_path / "out.txt").symlink_to(outside)
    with pytest.raises(UnsafeRead, match="outside"):
        read_bounded(tmp_path / "out.txt", 10)
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(UnsafeRead, match="outside"):
        read_bounded(tmp_path / "zero", 10)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(UnsafeRead):
        read_bounded(tmp_path / "loop", 10)


def test_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"ok\xff")
    with pytest.raises(UnsafeRead, match=r"not UTF-8 text \(byte 2\)"):
        read_text_bounded(tmp_path / "bad", 10)


@pytest.mark.parametrize("size", [(12000, 12000), (40000, 40000), (2**31 - 1, 2)])
def test_image_dimensions_are_checked_from_the_header(size: tuple[int, int]) -> None:
    with pytest.raises(UnsafeRead, match="pixel"):
        check_image_size(png_header(*size))


def test_a_screen_sized_header_passes_and_garbage_does_not() -> None:
    assert check_image_size(png_header(1920, 1080)) == (1920, 1080)
    with pytest.raises(UnsafeRead, match="not a readable image"):
        check_image_size(b"GIF89a-not-really")


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_validate_never_hangs_on_devices_or_fifos(tmp_path: Path, target: str) -> None:
    path = target
    if target == "fifo":
        path = str(tmp_path / "company.yaml")
        os.mkfifo(path)
    r = subprocess.run(
        [sys.executable, "-m", "agentcorp", "validate", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert "not a regular file" in lines[0] and "Traceback" not in r.stderr
