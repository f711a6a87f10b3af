"""The bank app: customers in Django models, their accounts in a facta event store, and the
events saved in the same transaction as the models (``services.py``)."""
