"""Hooks the fleet app offers to higher layers.

`capacity_lost` is sent (after commit) when devices leave the plan: a command was not followed and the device
was marked faulted, or a node stopped serving placements. Plain data only:
    site_codes: list[str], reason: str
The optimizer connects it to plan again without those devices.
"""

from django.dispatch import Signal

capacity_lost = Signal()
