"""Bearer-token authentication: django-scim2 leaves authentication to the host project."""

import hmac
import os

from django.contrib.auth.models import AnonymousUser


class BearerTokenMiddleware:
    """A request bearing SCIM_TOKEN acts as the provisioning service account."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.expected = f"Bearer {os.environ['SCIM_TOKEN']}"

    def __call__(self, request):
        from django.contrib.auth import get_user_model

        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), self.expected.encode()):
            request.user = get_user_model().objects.get(username="scim-service")
        else:
            request.user = AnonymousUser()
        return self.get_response(request)
