"""Settings of the bank example: one PostgreSQL database, shared by Django's tables and facta's.

The database comes from the environment (the example's own configuration, not facta's):
``BANK_DATABASE_NAME`` (default ``django_bank``), ``BANK_DATABASE_HOST`` (``127.0.0.1``),
``BANK_DATABASE_PORT`` (``5432``), ``BANK_DATABASE_USER`` (``postgres``),
``BANK_DATABASE_PASSWORD`` (none). ``manage.py test`` runs in a database of its own,
``test_<name>``, which it creates and drops.
"""

import os

SECRET_KEY = "an example's key: set a secret one in production"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
INSTALLED_APPS = ["bank"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bank.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Closes facta's connections to the test database before Django drops it.
TEST_RUNNER = "bank.runner.Runner"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",  # psycopg 3
        "NAME": os.environ.get("BANK_DATABASE_NAME", "django_bank"),
        "HOST": os.environ.get("BANK_DATABASE_HOST", "127.0.0.1"),
        "PORT": os.environ.get("BANK_DATABASE_PORT", "5432"),
        "USER": os.environ.get("BANK_DATABASE_USER", "postgres"),
        "PASSWORD": os.environ.get("BANK_DATABASE_PASSWORD", ""),
    }
}
