"""Canaille (yaal-coop, from PyPI) serving SCIM on loopback, for tests/apps/launchers.py.

Run as `python canaille_server.py PORT`, with CLIENT_ID and CLIENT_SECRET in the
environment: the in-memory store gets one OAuth client that may use the client
credentials grant, registered the way Canaille registers clients by default
(`client_secret_basic`, the only method it then accepts at its token endpoint).
"""

from __future__ import annotations

import datetime
import os
import secrets
import sys
import wsgiref.simple_server

from canaille import create_app
from canaille.app import models
from canaille.backends import Backend


class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are not printed: the fixture shows output only when start fails."""


def main() -> None:
    port = int(sys.argv[1])
    # Canaille refuses OAuth over plain HTTP unless told this is a test.
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    app = create_app({
        "TESTING": True,
        "SECRET_KEY": secrets.token_hex(16),
        "WTF_CSRF_ENABLED": False,
        "SERVER_NAME": f"127.0.0.1:{port}",
        "PREFERRED_URL_SCHEME": "http",
        "CANAILLE": {"DATABASE": "memory", "JAVASCRIPT": False},
        "CANAILLE_OIDC": {},
        "CANAILLE_SCIM": {"ENABLE_SERVER": True},
    })
    with app.app_context():
        client = models.Client(
            client_id=os.environ["CLIENT_ID"], client_secret=os.environ["CLIENT_SECRET"],
            client_name="scimsync", client_id_issued_at=datetime.datetime.now(datetime.UTC),
            grant_types=["client_credentials"], response_types=[], redirect_uris=[],
            scope=["openid"], token_endpoint_auth_method="client_secret_basic")
        Backend.instance.save(client)
        client.audience = [client]
        Backend.instance.save(client)
    server = wsgiref.simple_server.make_server("127.0.0.1", port, app,
                                              handler_class=QuietHandler)
    print(f"canaille listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
