"""Serve the Acme back office (Django admin over SQLite) on loopback.

    python3 sandboxes/backoffice/serve.py --port 8765 --db /tmp/backoffice.sqlite3

Migrates a fresh database when needed, creates the superuser ``admin`` with the password in
``BACKOFFICE_ADMIN_PASSWORD`` (random when unset; it is never printed), seeds a few rows, and
serves with a threaded WSGI server (no autoreload). Prints ``ready http://HOST:PORT/`` once
the socket accepts requests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socketserver
import sys
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

HERE = Path(__file__).resolve().parent


class _ThreadedServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Serve the Acme back office (Django admin).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument(
        "--db",
        type=Path,
        default=HERE / "backoffice.sqlite3",
        help="SQLite file (created and migrated when missing)",
    )
    p.add_argument("--no-seed", action="store_true", help="do not add the sample rows")
    return p.parse_args(argv)


def _seed() -> None:
    from crm.models import Customer, Invoice, Ticket

    if Customer.objects.exists():
        return
    globex = Customer.objects.create(
        name="Hank Scorpio", email="hank@globex.example", company="Globex"
    )
    initech = Customer.objects.create(
        name="Bill Lumbergh", email="bill@initech.example", company="Initech"
    )
    umbrella = Customer.objects.create(
        name="Alice Abernathy", email="alice@umbrella.example", company="Umbrella"
    )
    Invoice.objects.create(number="INV-1001", customer=globex, amount="1200.00", status="paid")
    Invoice.objects.create(number="INV-1002", customer=initech, amount="349.90", status="sent")
    Invoice.objects.create(number="INV-1003", customer=umbrella, amount="75.00", status="draft")
    Ticket.objects.create(
        subject="Printer on fire",
        customer=initech,
        status="open",
        notes="TPS report cover sheets are involved.",
    )
    Ticket.objects.create(subject="Volcano lair invoice", customer=globex, status="closed")


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    db = args.db.expanduser().resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    os.environ["BACKOFFICE_DB"] = str(db)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings")
    sys.path.insert(0, str(HERE))

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    call_command("migrate", interactive=False, verbosity=0)
    password = os.environ.get("BACKOFFICE_ADMIN_PASSWORD") or secrets.token_urlsafe(18)
    users = get_user_model()
    admin = users.objects.filter(username="admin").first()
    if admin is None:
        users.objects.create_superuser("admin", "admin@acme.example", password)
    else:
        admin.set_password(password)
        admin.save(update_fields=["password"])
    if not args.no_seed:
        _seed()

    app = StaticFilesHandler(get_wsgi_application())
    with make_server(
        args.host, args.port, app, server_class=_ThreadedServer, handler_class=_QuietHandler
    ) as httpd:
        print(f"ready http://{args.host}:{httpd.server_port}/", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            httpd.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
