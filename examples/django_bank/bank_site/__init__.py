"""The Django project of the bank example: its settings."""
