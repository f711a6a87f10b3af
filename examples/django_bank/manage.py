#!/usr/bin/env python
"""Django's command line for the bank example: ``python manage.py test``, ``migrate``,
``runserver`` (the database is named by the ``BANK_DATABASE_*`` variables of bank_site/settings.py).
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bank_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
