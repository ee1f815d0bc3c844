"""The ASGI entry point uvicorn imports (`scimsync.api.asgi:app`)."""

import os

from scimsync.api.app import create_app

# `scimsync serve` embeds a provisioning worker unless --no-worker is given.
app = create_app(worker=os.environ.get("SCIMSYNC_EMBEDDED_WORKER", "1") == "1")
