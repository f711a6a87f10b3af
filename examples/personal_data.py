"""Personal data, sealed per customer and forgotten on request (crypto-shredding).

    pip install 'facta[personal]'
    python examples/personal_data.py

Fields marked ``facta.Personal`` are stored encrypted with a data key of their subject (the
field marked ``facta.Subject``); ``store.forget(subject)`` destroys that key, and from then on
those fields read back as ``facta.Forgotten``, in every event that ever held them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import facta
from facta.personal import AesKeyProvider, generate_master_key, is_forgotten


@facta.event("example.CustomerRegistered")
@dataclass(frozen=True)
class CustomerRegistered:
    customer_id: Annotated[str, facta.Subject]
    email: Annotated[str, facta.Personal]
    plan: str


# The application's master key. In production: EnvKeyProvider("FACTA_MASTER_KEY"), a
# FileKeyProvider, or a key management service (docs/personal-data.md).
master_key = AesKeyProvider(generate_master_key())

with facta.connect("memory://", keys=master_key) as store:
    store.append("customer-1", [CustomerRegistered("c-1", "ada@example.org", "gold")], 0)
    store.append("customer-2", [CustomerRegistered("c-2", "bob@example.org", "free")], 0)

    stored = store.recorder.read_stream("customer-1", 1, 1, 1)[0].data
    print("stored:", "ada@example.org" in stored.decode(), stored.decode()[:45])

    store.forget("c-1")  # Ada asked to be forgotten: her data key is destroyed
    for event in store.read_all():
        email = "(forgotten)" if is_forgotten(event.data.email) else event.data.email
        print(event.stream_id, email, event.data.plan)
