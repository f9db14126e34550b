"""Hooks the physical world offers to the layers above it (it never imports them).

`replan_requested` is sent once a change that should be planned for at once has committed (a site back online);
`optimizer` connects the receiver that queues the run (`optimizer.receivers`). Sent with `send_robust`: a receiver
that fails (a broker down) is logged by the sender, and the change stands.

`allocation_applied` is sent by whoever writes a new running allocation to the sites (the optimizer, after each
applied plan, once its transaction commits), with plain data only; the fleet app connects it to dispatch the plan
to the machines (`fleet.receivers`). A receiver must return quickly (enqueue work).
"""

from django.dispatch import Signal

# sender: the model class whose change asks for a re-plan; kwargs: `reason` (str, for logs).
replan_requested = Signal()

# sender: the applier's model class; kwargs: run_id (int), applied_at (datetime),
# units (dict: site code -> hardware code -> units running).
allocation_applied = Signal()
