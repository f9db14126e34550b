"""The price nodes of the seeded fleet: Texas buys at ERCOT's hub average, Germany in DE-LU, Australia in NSW1."""

from __future__ import annotations

from collections import Counter

from .choices import Currency, Market
from .models import PriceNode

# (market, node, currency, native resolution in minutes, description, site codes tied to it when seeded)
PRICE_NODES = (
    (Market.ERCOT, "HB_HUBAVG", Currency.USD, 15, "ERCOT hub average, real-time", ("site_5_texas",)),
    (Market.ENTSOE, "DE-LU", Currency.EUR, 60, "Germany-Luxembourg day-ahead", ("site_10_germany",)),
    (Market.AEMO, "NSW1", Currency.AUD, 5, "NEM New South Wales regional reference price", ("site_8_australia",)),
)


def seed_price_nodes(sites_by_code: dict) -> Counter:
    """Create the nodes and tie their sites, leaving a site that already has a node (an operator's choice) alone."""
    outcomes: Counter = Counter()
    for market, name, currency, minutes, description, codes in PRICE_NODES:
        node, created = PriceNode.objects.get_or_create(
            market=market,
            node=name,
            defaults={"currency": currency, "resolution_minutes": minutes, "description": description},
        )
        outcomes["price nodes", "created" if created else "unchanged"] += 1
        for code in codes:
            site = sites_by_code.get(code)
            if site is not None and site.price_node_id is None:
                site.price_node = node
                site.save(update_fields=["price_node", "updated_at"])
                outcomes["sites tied to a price node", "updated"] += 1
    return outcomes
