"""Hooks the physical world offers to the layers above it (it never imports them).

`replan_requested` is sent once a change that should be planned for at once has committed (a site back online);
`optimizer` connects the receiver that queues the run (`optimizer.receivers`). Sent with `send_robust`: a receiver
that fails (a broker down) is logged by the sender, and the change stands.
"""

from django.dispatch import Signal

# sender: the model class whose change asks for a re-plan; kwargs: `reason` (str, for logs).
replan_requested = Signal()
