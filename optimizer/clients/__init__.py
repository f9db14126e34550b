"""Clients of external systems used by decisions, one small module each (settings, timeouts, typed errors).

``claude``: the Claude Messages API, for the advisor (``optimizer.advisor``). Nothing else in ``optimizer``
speaks HTTP.
"""
