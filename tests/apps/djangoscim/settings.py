"""Settings of the tiny Django project that hosts django-scim2 (see serve.py)."""

import os
from pathlib import Path

STATE = Path(os.environ["STATE_DIR"])
PORT = os.environ["PORT"]

SECRET_KEY = os.environ["SCIM_TOKEN"] + "-django"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_scim",
                  "directory"]
MIDDLEWARE = ["directory.auth.BearerTokenMiddleware",
              "django_scim.middleware.SCIMAuthCheckMiddleware"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": str(STATE / "db.sqlite3")}}
# The app's models get their migrations made at start, in the state directory.
MIGRATION_MODULES = {"directory": "directory_migrations"}
AUTH_USER_MODEL = "directory.User"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
SCIM_SERVICE_PROVIDER = {
    "NETLOC": f"127.0.0.1:{PORT}",
    "SCHEME": "http",
    "GROUP_MODEL": "directory.models.Group",
    "AUTHENTICATION_SCHEMES": [{"type": "oauthbearertoken", "name": "OAuth Bearer Token",
                                "description": "A static bearer token"}],
}
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"console": {"class": "logging.StreamHandler"}},
           "root": {"handlers": ["console"], "level": "WARNING"}}
