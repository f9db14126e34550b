"""Celery's Redis transport, made at-least-once when the broker is at its memory limit.

kombu's Redis transport takes a message off its queue with BRPOP, then records it as unacknowledged (ZADD to
`unacked_index`, HSET to `unacked`, in one MULTI/EXEC) so that a worker dying before the ack leaves it to be
redelivered (acks_late, task_reject_on_worker_lost). Redis at its maxmemory with `noeviction` (the broker's policy,
docs/deployment.md) allows BRPOP, which frees memory, but refuses the record with OOM: kombu then raised, the
worker reconnected, and the message, held by nobody, was lost. Here the record is retried until Redis takes it
(the MULTI/EXEC is all or nothing, so a retry never records twice); the worker waits meanwhile, as it does for any
other command the full broker refuses (CELERY_BROKER_CHANNEL_ERROR_RETRY). A worker stopped during that wait still
loses the message it holds: stop workers only once the broker has room.

energyarb/celery.py makes this the transport of `redis://` and `rediss://` URLs.
"""

from __future__ import annotations

import logging
import time

from kombu.transport import redis as kombu_redis
from redis.exceptions import OutOfMemoryError

logger = logging.getLogger(__name__)

RECORD_RETRY_S = 0.5  # between attempts to record a taken message while Redis refuses writes


class QoS(kombu_redis.QoS):
    def append(self, message, delivery_tag) -> None:
        refused = 0
        while True:
            try:
                super().append(message, delivery_tag)
                break
            except OutOfMemoryError:
                refused += 1
                if refused == 1:
                    logger.warning(
                        "The broker is at its memory limit (maxmemory): message %s is held until Redis records it.",
                        delivery_tag,
                    )
                time.sleep(RECORD_RETRY_S)
        if refused:
            logger.warning("Message %s recorded after %d refusals.", delivery_tag, refused)


class Channel(kombu_redis.Channel):
    QoS = QoS


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    """Make this transport the one kombu resolves `redis://` and `rediss://` URLs to (before any connection)."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES["redis"] = f"{__name__}:Transport"
    TRANSPORT_ALIASES["rediss"] = f"{__name__}:Transport"
