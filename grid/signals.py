"""Hooks a higher layer connects to: the grid app knows nothing of the optimizer.

`grid_event_changed(event_id, status)` is sent after the transaction that created or moved an event commits;
the optimizer connects a receiver that queues a re-plan on its high-priority queue.
"""

from django.dispatch import Signal

grid_event_changed = Signal()
