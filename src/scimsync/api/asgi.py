"""The ASGI entry point uvicorn imports (`scimsync.api.asgi:app`)."""

from scimsync.api.app import create_app

app = create_app()
