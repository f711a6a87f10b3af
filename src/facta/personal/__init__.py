"""Personal data and crypto-shredding: personal fields sealed per subject, forgotten on request.

Mark an event's (or snapshot state's) personal fields and the subject they belong to; open the
store with a key provider; ``store.forget(subject)`` destroys the subject's data key, after
which those fields read back as :data:`Forgotten`::

    @facta.event("shop.CustomerRegistered")
    @dataclass(frozen=True)
    class CustomerRegistered:
        customer_id: Annotated[str, facta.Subject]
        email: Annotated[str, facta.Personal]

    store = facta.connect(url, keys=EnvKeyProvider("FACTA_MASTER_KEY"))

docs/personal-data.md tells the whole story: keys, rotation, projections, what erasure
covers. The encryption needs the ``cryptography`` package (``pip install 'facta[personal]'``).
"""

from facta.personal.data_keys import StoredKey
from facta.personal.errors import KeysUnavailable, MasterKeyError, NoKeyProvider, PersonalDataError
from facta.personal.markers import (
    STREAM,
    Forgotten,
    ForgottenType,
    Personal,
    Subject,
    is_forgotten,
)
from facta.personal.providers import (
    AesKeyProvider,
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    KeyRing,
    generate_master_key,
)

__all__ = [
    "STREAM",
    "AesKeyProvider",
    "EnvKeyProvider",
    "FileKeyProvider",
    "Forgotten",
    "ForgottenType",
    "KeyProvider",
    "KeyRing",
    "KeysUnavailable",
    "MasterKeyError",
    "NoKeyProvider",
    "Personal",
    "PersonalDataError",
    "StoredKey",
    "Subject",
    "generate_master_key",
    "is_forgotten",
]
