"""The host project's users and groups, with django-scim2's mixins (its documented way)."""

from django.contrib.auth.models import AbstractUser
from django.db import models
from django_scim.models import AbstractSCIMGroupMixin, AbstractSCIMUserMixin


class Group(AbstractSCIMGroupMixin):
    name = models.CharField(max_length=150, unique=True)


class User(AbstractSCIMUserMixin, AbstractUser):
    # django-scim2 reads a user's groups as `scim_groups` and a group's as `user_set`.
    scim_groups = models.ManyToManyField(Group, related_name="user_set", blank=True)
