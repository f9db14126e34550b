"""The MARA Hackathon 2025 market API, served by energyarb under ``/mara/``.

A client written for the event (``GET /prices``, ``GET /inventory``, ``POST /sites``, ``GET /sites``,
``PUT /machines``, ``GET /machines`` with ``X-Api-Key``) runs against ``<host>/mara`` unchanged but for its base
URL: same paths, JSON shapes (keys sorted, as the event's server sent them), timestamp format (ISO 8601 without an
offset, in UTC) and per-interval accounting (``optimizer.engine.mara.score_allocation``).

- ``prices``: what ``GET /prices`` serves (imported event trace, or energyarb's prices converted to its units).
- ``services``: the writes (create a site, set its allocation with the power check) and the machines report.
- ``auth``: ``X-Api-Key`` as a DRF authentication class and permission.
- ``serializers``, ``views``, ``urls``: the HTTP surface; excluded from the OpenAPI schema of ``/api/`` (it is a
  compatibility surface whose shapes are the event's, documented in ``views`` and ``prices``).
"""
