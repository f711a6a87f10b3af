"""Publishing: a relay sends the store's events to a message broker, at least once, in order;
an inbox applies them, in another service, to a projection of its store, exactly once.

The event store is the outbox: a relay (:class:`Relay`) is a named, checkpointed reader of the
global log that publishes each event, waits for the broker's acknowledgement, and only then
moves its checkpoint. A broker (:class:`Broker`) is one small class per message system; the
ones facta ships live in their own modules, each needing its client library (an extra).
On the receiving side an :class:`Inbox` reads a broker subscription (a :class:`Source`, in
the same modules) and applies each event once, each stream in order, in a transaction of its
own store.
"""

from facta.publishing.broker import Broker, BrokerUnavailable, Message, message_for, subject_for
from facta.publishing.inbox import Gaps, Inbox, InboxError
from facta.publishing.received import InvalidMessage
from facta.publishing.relay import Relay
from facta.publishing.source import Delivery, Source

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "Delivery",
    "Gaps",
    "Inbox",
    "InboxError",
    "InvalidMessage",
    "Message",
    "Relay",
    "Source",
    "message_for",
    "subject_for",
]
