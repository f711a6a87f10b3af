"""How an event class says which of its fields are personal data, and whose.

A field is personal when its annotation carries :data:`Personal`; it is encrypted with the data
key of a *subject*: the field marked :data:`Subject`, the field named by
``Personal(subject="...")``, or the event's stream (``Personal(subject=STREAM)``):

>>> from dataclasses import dataclass
>>> from typing import Annotated
>>> @dataclass(frozen=True)
... class CustomerRegistered:
...     customer_id: Annotated[str, Subject]
...     email: Annotated[str, Personal]
...     referrer_name: Annotated[str, Personal(subject="referrer_id")]
...     referrer_id: str
>>> Personal(subject="referrer_id")
Personal(subject='referrer_id')

Once a subject is forgotten, its personal fields read back as :data:`Forgotten`.
"""

from __future__ import annotations

from typing import Any, Final, final

__all__ = [
    "STREAM",
    "Forgotten",
    "ForgottenType",
    "Personal",
    "PersonalMarker",
    "Subject",
    "is_forgotten",
]


@final
class _StreamSubject:
    """The subject of a personal field is the id of the stream the event is appended to."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "facta.personal.STREAM"

    def __reduce__(self) -> str:
        return "STREAM"


#: ``Personal(subject=STREAM)``: the subject is the event's stream (the aggregate's id).
STREAM: Final = _StreamSubject()


@final
class PersonalMarker:
    """The marker of a personal field: ``Annotated[str, Personal]`` (subject: the field
    marked ``Subject``) or ``Annotated[str, Personal(subject="customer_id")]``."""

    __slots__ = ("subject",)

    def __init__(self, subject: str | _StreamSubject | None = None) -> None:
        if subject is not None and not isinstance(subject, str | _StreamSubject):
            raise TypeError(
                f"Personal(subject=...) takes the name of the field holding the subject's id, "
                f"or facta.personal.STREAM; got {subject!r}"
            )
        if isinstance(subject, str) and not subject:
            raise TypeError("Personal(subject=...) needs a field name, got ''")
        self.subject = subject

    def __call__(self, *, subject: str | _StreamSubject) -> PersonalMarker:
        """A marker whose subject is the field ``subject`` (or the stream, with STREAM)."""
        return PersonalMarker(subject)

    def __repr__(self) -> str:
        return "Personal" if self.subject is None else f"Personal(subject={self.subject!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PersonalMarker) and other.subject == self.subject

    def __hash__(self) -> int:
        return hash((PersonalMarker, self.subject))


#: Marks a field as personal data: ``email: Annotated[str, facta.Personal]``.
Personal: Final = PersonalMarker()


@final
class _SubjectMarker:
    """Marks the field that holds the id of the person a personal field is about."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Subject"

    def __reduce__(self) -> str:
        return "Subject"


#: Marks the field holding the subject's id: ``customer_id: Annotated[str, facta.Subject]``.
Subject: Final = _SubjectMarker()


@final
class ForgottenType:
    """The type of :data:`Forgotten`, the one value a forgotten personal field reads back as."""

    __slots__ = ()
    _instance: ForgottenType | None = None

    def __new__(cls) -> ForgottenType:
        if cls._instance is None:
            cls._instance = object.__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "facta.Forgotten"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "Forgotten"

    def __copy__(self) -> ForgottenType:
        return self

    def __deepcopy__(self, memo: Any) -> ForgottenType:
        return self


#: What a personal field reads back as once its subject's data key is destroyed
#: (``store.forget(subject)``): whatever the field's declared type, compare with ``is``.
#: It is falsy, like None, and cannot be stored again (an append holding it is refused).
Forgotten: Final = ForgottenType()


def is_forgotten(value: object) -> bool:
    """Whether ``value`` is :data:`Forgotten`. The same as ``value is Forgotten``, which a
    strict type checker refuses for a field declared ``str`` ("non-overlapping identity
    check"): handlers of personal fields use this instead."""
    return value is Forgotten
