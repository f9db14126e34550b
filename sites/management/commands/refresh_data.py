"""`manage.py refresh_data`: refresh prices and weather now, through the same services as the periodic tasks."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from sites.clients.errors import SourceError
from sites.services import refresh_market_prices, refresh_weather


class Command(BaseCommand):
    help = "Store the newest prices and weather from the configured sources (idempotent)."

    def handle(self, *args, **options):
        now = timezone.now()
        try:
            prices = refresh_market_prices(at=now)
            weather = refresh_weather(at=now)
        except SourceError as exc:
            raise CommandError(f"A source failed; nothing stored was changed: {exc}") from exc
        self.stdout.write(
            f"prices from {prices.source}: {prices.rows_written} new rows up to {prices.interval_start:%H:%M}"
        )
        self.stdout.write(
            f"weather from {weather.source}: {weather.rows_written} new rows up to {weather.interval_start:%H:%M}"
        )
