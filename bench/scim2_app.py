"""python-scim's scim2-server as its `scim2-server` command runs it, with a listen
backlog of 128 instead of socketserver's 5.

The server closes its connection after every answer (HTTP/1.0), so sixteen clients
connect again and again at once; with a backlog of 5, measured on this machine,
connections were reset under a plain client with 16 requests in flight.

Usage: .venv/bin/python bench/scim2_app.py --port 8080 --bearer-token TOKEN
"""

from __future__ import annotations

import sys

from scim2_server.testserver import cli

if __name__ == "__main__":
    cli.ThreadingWSGIServer.request_queue_size = 128
    sys.argv[0] = "scim2-server"
    cli.main()
