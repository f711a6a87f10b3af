"""Publishing: a relay sends the store's events to a message broker, at least once, in order.

The event store is the outbox: a relay (:class:`Relay`) is a named, checkpointed reader of the
global log that publishes each event, waits for the broker's acknowledgement, and only then
moves its checkpoint. A broker (:class:`Broker`) is one small class per message system; the
ones facta ships live in their own modules, each needing its client library (an extra).
"""

from facta.publishing.broker import Broker, BrokerUnavailable, Message, message_for, subject_for
from facta.publishing.relay import Relay

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "Message",
    "Relay",
    "message_for",
    "subject_for",
]
