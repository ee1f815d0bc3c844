"""django-scim2 in a tiny Django project on loopback, for tests/apps/launchers.py.

Run as `python serve.py PORT` with SCIM_TOKEN and STATE_DIR in the environment: the
project's migrations are made and applied to a fresh SQLite database in STATE_DIR, a
service account is created for the token, and Django's WSGI application is served.
"""

from __future__ import annotations

import os
import sys
import wsgiref.simple_server
from pathlib import Path


class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are not printed: the fixture shows output only when start fails."""


def main() -> None:
    os.environ["PORT"] = sys.argv[1]
    state = Path(os.environ["STATE_DIR"])
    (state / "directory_migrations").mkdir(exist_ok=True)
    (state / "directory_migrations" / "__init__.py").touch()
    sys.path[:0] = [str(Path(__file__).parent), str(state)]
    os.environ["DJANGO_SETTINGS_MODULE"] = "settings"

    import django
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    django.setup()
    call_command("makemigrations", "directory", verbosity=0)
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("scim-service", is_active=True)
    server = wsgiref.simple_server.make_server("127.0.0.1", int(sys.argv[1]),
                                              get_wsgi_application(),
                                              handler_class=QuietHandler)
    print(f"django-scim2 listening on {sys.argv[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
