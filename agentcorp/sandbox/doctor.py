"""What a machine needs to run sandboxes, and what is missing: the logic of ``agentcorp doctor``.

``diagnose(company)`` checks the programs every run needs (Xvfb and openbox for desktops,
Chromium for browser sandboxes), what each grounding source needs (AT-SPI: a D-Bus daemon,
at-spi2-core's bus configuration and the ``jeepney`` client; OCR: the recogniser and detector
models the OCR package ships), and, given a company, every program its sandboxes' apps and
services name. Each ``Finding`` is one line: what, whether it is there, and how to get it.
Programs only the benchmarks use (scrot, imagemagick) are not asked for.

The company is read duck-typed (``sandboxes`` with ``kind``, ``apps`` and ``services``), so
this module needs nothing from ``agentcorp.spec``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentcorp.sandbox.apps import AppSpec

__all__ = ["Finding", "diagnose", "missing_required"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a run may need: ``ok`` when present; ``fix`` says how to get it."""

    what: str
    purpose: str
    ok: bool
    detail: str = ""
    fix: str = ""
    required: bool = True

    def line(self) -> str:
        """The one line ``agentcorp doctor`` prints for this finding."""
        if self.ok:
            return f"ok       {self.what:<22} {self.detail}"
        tag = "missing " if self.required else "optional"
        return f"{tag} {self.what:<22} {self.fix}  ({self.purpose})"


def _program(name: str, package: str, purpose: str, *, required: bool = True) -> Finding:
    if name in ("python", "python3") or name.startswith("python3."):
        return Finding(name, purpose, True, sys.executable, required=required)
    if os.sep in name:
        ok = os.path.isfile(name) and os.access(name, os.X_OK)
        path: str | None = name if ok else None
    else:
        path = shutil.which(name)
    return Finding(
        name, purpose, path is not None, path or "", f"apt-get install {package}", required
    )


def _module(name: str, pip_name: str, purpose: str, *, required: bool) -> Finding:
    spec = importlib.util.find_spec(name)
    where = str(spec.origin) if spec is not None and spec.origin else ""
    return Finding(
        f"python {pip_name}", purpose, spec is not None, where, f"pip install {pip_name}", required
    )


def _a11y_config() -> Finding:
    paths = [
        Path("/usr/share/defaults/at-spi2/accessibility.conf"),
        Path("/usr/local/share/defaults/at-spi2/accessibility.conf"),
    ]
    found = next((p for p in paths if p.is_file()), None)
    return Finding(
        "at-spi2-core",
        "accessibility-tree grounding (else OCR only)",
        found is not None,
        str(found or ""),
        "apt-get install at-spi2-core",
        required=False,
    )


def _ocr_models() -> Finding:
    purpose = "OCR grounding (apps without an accessibility tree)"
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.origin:
        return Finding(
            "OCR models", purpose, False, fix="pip install rapidocr-onnxruntime", required=True
        )
    models = Path(spec.origin).parent / "models"
    onnx = sorted(models.glob("*.onnx")) if models.is_dir() else []
    have_rec = any("rec" in p.name for p in onnx)
    have_det = any("det" in p.name for p in onnx)
    return Finding(
        "OCR models",
        purpose,
        have_rec and have_det,
        str(models),
        "pip install --force-reinstall rapidocr-onnxruntime (its models are missing)",
        required=True,
    )


def _base(kinds: set[str]) -> list[Finding]:
    desktop = not kinds or "desktop" in kinds
    browser = "browser" in kinds
    return [
        _program("Xvfb", "xvfb", "virtual desktop", required=desktop),
        _program("openbox", "openbox", "window manager", required=desktop),
        _program("chromium", "chromium", "browser sandboxes", required=browser),
        _program(
            "dbus-daemon", "dbus-daemon", "accessibility-tree grounding (else OCR)", required=False
        ),
        _a11y_config(),
        _module("jeepney", "jeepney", "accessibility-tree grounding (else OCR)", required=False),
        _ocr_models(),
        _program("x11vnc", "x11vnc", "--live-view", required=False),
        _program("websockify", "python3-websockify", "--live-view in a browser", required=False),
    ]


def _company(company: Any) -> list[Finding]:
    out: list[Finding] = []
    seen: set[str] = set()
    for sname, sb in getattr(company, "sandboxes", {}).items():
        for app in getattr(sb, "apps", ()):
            prog = str(app.command[0])
            pkg = AppSpec(app.name, list(app.command)).debian_package()
            if prog not in seen:
                seen.add(prog)
                out.append(_program(prog, pkg, f"sandbox {sname} app {app.name}"))
        for svc in getattr(sb, "services", ()):
            prog = str(svc.command[0])
            if prog not in seen and not prog.startswith(("./", "../")):
                seen.add(prog)
                pkg = AppSpec(svc.name, list(svc.command)).debian_package()
                out.append(_program(prog, pkg, f"sandbox {sname} service {svc.name}"))
    return out


def diagnose(company: Any | None = None) -> list[Finding]:
    """Everything a run of ``company`` (or any run, without one) needs, present or not."""
    kinds = (
        {str(sb.kind) for sb in getattr(company, "sandboxes", {}).values()} if company else set()
    )
    return _base(kinds) + (_company(company) if company is not None else [])


def missing_required(findings: list[Finding]) -> list[Finding]:
    """The findings a run cannot do without."""
    return [f for f in findings if f.required and not f.ok]
