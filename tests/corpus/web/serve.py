"""Serve the MiniWoB++ pages of the ``miniwob`` package on 127.0.0.1, one fixed episode each.

    python3 serve.py --port 8931

``/miniwob/TASK.html?seed=S`` is the package's own page with one script added at its end:
once the page has loaded it seeds the page's random generator with ``S`` and starts the
episode (what the package's Selenium driver does through ``Math.seedrandom`` and
``core.startEpisodeReal``), with a 10-minute episode clock instead of 10 seconds so a slow
machine is not scored on its speed. The page's own verdict stays in its globals
(``WOB_DONE_GLOBAL``, ``WOB_RAW_REWARD_GLOBAL``) for the tasks' ``js`` checks. Everything
else under the package's ``html`` folder is served as is.
"""

from __future__ import annotations

import argparse
import http.server
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import miniwob

HTML = Path(miniwob.__file__).resolve().parent / "html"
START = """<script>
window.addEventListener('load', function () {
  core.EPISODE_MAX_TIME = 600000;
  Math.seedrandom(%s);
  core.startEpisodeReal();
});
</script>"""


class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(HTML), **kwargs)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        seed = parse_qs(parts.query).get("seed")
        page = (HTML / parts.path.lstrip("/")).resolve()
        if seed is None or page.suffix != ".html" or not page.is_relative_to(HTML):
            super().do_GET()
            return
        if not page.is_file():
            self.send_error(404)
            return
        body = page.read_text(encoding="utf-8") + START % json.dumps(seed[0])
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
