"""API routes of this app, registered on the project's single router (energyarb.api_urls)."""

from sites.markets.api import routes as market_routes

from .views import (
    EnergyPriceViewSet,
    HardwareModelViewSet,
    LatestPricesViewSet,
    MarketPriceViewSet,
    SiteViewSet,
    WeatherReadingViewSet,
)

routes: list[tuple] = [
    ("sites", SiteViewSet, "site"),
    ("hardware-models", HardwareModelViewSet, "hardware-model"),
    ("energy-prices", EnergyPriceViewSet, "energy-price"),
    ("market-prices", MarketPriceViewSet, "market-price"),
    ("weather-readings", WeatherReadingViewSet, "weather-reading"),
    ("latest-prices", LatestPricesViewSet, "latest-prices"),
    *market_routes,
]
