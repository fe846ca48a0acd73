"""What a desktop runs: ``AppSpec`` names a program and the window that shows it is up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AppSpec"]

# Debian package that provides each app we know; used in "install …" hints.
PACKAGES: dict[str, str] = {
    "gnumeric": "gnumeric",
    "ssconvert": "gnumeric",
    "mousepad": "mousepad",
    "xterm": "xterm",
    "xclock": "x11-apps",
    "xeyes": "x11-apps",
    "chromium": "chromium",
    "openbox": "openbox",
    "Xvfb": "xvfb",
    "libreoffice": "libreoffice-calc",
    "galculator": "galculator",
    "featherpad": "featherpad",
    "xedit": "x11-apps",
    "xcalc": "x11-apps",
    "dbus-daemon": "dbus-daemon",
}


@dataclass(frozen=True, slots=True)
class AppSpec:
    """One program a desktop starts, after its files are in place.

    ``command`` may use ``~`` for the sandbox's HOME. ``wait_for_window`` is a substring of
    the window title to wait for before the desktop counts as ready; ``maximize`` then
    asks the window manager to fill the screen with it. ``package`` overrides the Debian
    package named when the program is missing. ``timeout`` (seconds) caps the wait for the
    window (None: the desktop's default); ``env`` is added to the app's clean environment
    (``~`` is the sandbox HOME); ``type_delay`` is the pause after each key typed into this
    app's windows (None: adaptive).
    """

    name: str
    command: Sequence[str]
    wait_for_window: str | None = None
    cwd: Path | None = None
    package: str | None = field(default=None)
    maximize: bool = False
    timeout: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    type_delay: float | None = None

    def debian_package(self) -> str:
        """The Debian package to suggest when the program is missing."""
        if self.package:
            return self.package
        prog = Path(self.command[0]).name if self.command else self.name
        return PACKAGES.get(prog, prog)
