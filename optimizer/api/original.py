"""The original product's API, kept at its paths and with its field names, backed by real data and services.

Paths (under /api/, with or without a trailing slash): `health`, `initialize`, `sites/status`, `optimize`,
`dashboard/metrics`, `hardware/inventory`, `debug/state` (`sla/request` lives in the sla app). Unlike the
original: GETs write nothing; actions and economics need a staff login or token; errors are HTTP errors with JSON
bodies; nothing is random.

Units (the original mixed them up; here each is fixed and documented on its field):
- power in **watts** (`power_used`, `power_capacity`, `total_power_used`): the hackathon's unit for power;
- temperatures in °C; percentages 0-100; `cooling_efficiency` = 1 / PUE (share of facility power reaching IT);
- money in USD per hour (`revenue`, `total_revenue`, `climate_savings`, `timezone_optimization`);
- `energy_price`, `hash_price`, `token_price` in the hackathon market API's per-5-minute units (converted from
  energyarb's USD/MWh, USD per PH/s per day and USD per million tokens by `sites.units`), as the original served.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.db import DatabaseError, transaction
from django.urls import re_path, reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from sites import units
from sites.choices import SiteStatus
from sites.models import Site
from sites.seeding import seed_physical_world
from sla.choices import TierCode
from sla.services import seed_tiers

from ..choices import RunStatus, RunTrigger
from ..dashboard import fleet_state, run_history
from ..services import request_optimization

# Hardware catalogue codes -> (group, name in the original's inventories, allocation key, total_hardware key).
ORIGINAL_HARDWARE = {
    "miner_air": ("miners", "air", "air_miners", "air_miners"),
    "miner_hydro": ("miners", "hydro", "hydro_miners", "hydro_miners"),
    "miner_immersion": ("miners", "immersion", "immersion_miners", "immersion_miners"),
    "inference_gpu": ("inference", "gpu", "gpu_compute", "gpu_units"),
    "inference_asic": ("inference", "asic", "asic_compute", "asic_units"),
}
HISTORY_RUNS = 20
HISTORY_HOURS = 24 * 7


# Serializers: they document the shapes (OpenAPI) and render them; the views build plain dicts.


class PricingDataSerializer(serializers.Serializer):
    energy_price = serializers.FloatField(allow_null=True, help_text="Hackathon units; fleet mean of the sites.")
    hash_price = serializers.FloatField(allow_null=True, help_text="Hackathon units.")
    token_price = serializers.FloatField(allow_null=True, help_text="Hackathon units.")
    timestamp = serializers.DateTimeField(allow_null=True, help_text="Start of the market interval.")
    # DRF's serializer metaclass takes declared fields out of the class, so this never shadows `Field.source`.
    source = serializers.CharField(allow_null=True, help_text="simulator, hackathon_api, csv_mara, ...")  # type: ignore[assignment]


class MinerSpecSerializer(serializers.Serializer):
    hashrate = serializers.FloatField(help_text="Hackathon hashrate units per unit.")
    power = serializers.FloatField(help_text="Watts per unit.")


class InferenceSpecSerializer(serializers.Serializer):
    power = serializers.FloatField(help_text="Watts per unit.")
    tokens = serializers.FloatField(help_text="Tokens per 5-minute interval per unit.")


class MaraMinersSerializer(serializers.Serializer):
    air = MinerSpecSerializer(allow_null=True)
    hydro = MinerSpecSerializer(allow_null=True)
    immersion = MinerSpecSerializer(allow_null=True)


class MaraInferenceSerializer(serializers.Serializer):
    asic = InferenceSpecSerializer(allow_null=True)
    gpu = InferenceSpecSerializer(allow_null=True)


class MaraInventorySerializer(serializers.Serializer):
    inference = MaraInferenceSerializer()
    miners = MaraMinersSerializer()


class InitializeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["initialized", "already_initialized"])
    message = serializers.CharField()
    pricing_data = PricingDataSerializer(allow_null=True)
    mara_inventory = MaraInventorySerializer()
    total_sites = serializers.IntegerField()


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "unhealthy"])
    initialized = serializers.BooleanField(help_text="Sites exist.")
    timestamp = serializers.DateTimeField()


class LocationSerializer(serializers.Serializer):
    lat = serializers.FloatField()
    lon = serializers.FloatField()
    timezone = serializers.CharField(help_text="IANA name.")


class MinerCountsSerializer(serializers.Serializer):
    air = serializers.IntegerField()
    hydro = serializers.IntegerField()
    immersion = serializers.IntegerField()


class InferenceCountsSerializer(serializers.Serializer):
    gpu = serializers.IntegerField()
    asic = serializers.IntegerField()


class HardwareCountsSerializer(serializers.Serializer):
    miners = MinerCountsSerializer()
    inference = InferenceCountsSerializer()


class AllocationCountsSerializer(serializers.Serializer):
    gpu_compute = serializers.IntegerField()
    asic_compute = serializers.IntegerField()
    air_miners = serializers.IntegerField()
    hydro_miners = serializers.IntegerField()
    immersion_miners = serializers.IntegerField()


class WeatherSerializer(serializers.Serializer):
    temperature = serializers.FloatField(allow_null=True, help_text="°C.")
    conditions = serializers.CharField(help_text="Temperature band: cold, cool, mild, warm, hot or unknown.")


class SitePricingSerializer(serializers.Serializer):
    hash_price = serializers.FloatField(allow_null=True, help_text="Hackathon units.")
    token_price = serializers.FloatField(allow_null=True, help_text="Hackathon units.")
    energy_price = serializers.FloatField(allow_null=True, help_text="Hackathon units (the site's price).")


class OriginalSiteSerializer(serializers.Serializer):
    site_id = serializers.CharField(help_text="The site's code, e.g. site_3_norway.")
    name = serializers.CharField()
    location = LocationSerializer()
    hardware_inventory = HardwareCountsSerializer(help_text="Units installed.")
    allocation = AllocationCountsSerializer(help_text="Units running (the applied allocation).")
    power_used = serializers.FloatField(help_text="Facility power drawn now (IT x PUE), in watts.")
    power_capacity = serializers.FloatField(help_text="Facility power limit, in watts.")
    power_utilization = serializers.FloatField(help_text="power_used / power_capacity, percent.")
    weather = WeatherSerializer()
    current_temp = serializers.FloatField(allow_null=True, help_text="°C.")
    local_time = serializers.CharField(help_text="ISO 8601 local time with UTC offset.")
    cooling_efficiency = serializers.FloatField(help_text="1 / PUE at the current temperature (0-1).")
    pricing = SitePricingSerializer()
    energy_price = serializers.FloatField(allow_null=True, help_text="Hackathon units (same as pricing).")
    revenue = serializers.FloatField(help_text="USD per hour under the applied allocation.")
    uptime = serializers.FloatField(help_text="Availability now, percent: 100 online, 0 maintenance or offline.")
    efficiency_score = serializers.FloatField(help_text="100 / PUE: percent of facility power reaching IT.")
    last_updated = serializers.DateTimeField(allow_null=True)


class TotalHardwareSerializer(serializers.Serializer):
    gpu_units = serializers.IntegerField()
    asic_units = serializers.IntegerField()
    air_miners = serializers.IntegerField()
    hydro_miners = serializers.IntegerField()
    immersion_miners = serializers.IntegerField()


class SitesGlobalMetricsSerializer(serializers.Serializer):
    total_power_used = serializers.FloatField(help_text="Watts.")
    total_power_capacity = serializers.FloatField(help_text="Watts.")
    global_utilization = serializers.FloatField(help_text="Percent.")
    average_efficiency = serializers.FloatField(allow_null=True, help_text="1 / fleet PUE (0-1).")
    average_uptime = serializers.FloatField(allow_null=True, help_text="Percent of sites online.")
    total_hardware = TotalHardwareSerializer(help_text="Units installed.")
    active_sites = serializers.IntegerField(help_text="Sites online.")


class SitesStatusSerializer(serializers.Serializer):
    sites = OriginalSiteSerializer(many=True)
    total_sites = serializers.IntegerField()
    global_metrics = SitesGlobalMetricsSerializer()
    last_updated = serializers.DateTimeField()


class TierNumbersSerializer(serializers.Serializer):
    premium = serializers.FloatField(allow_null=True)
    standard = serializers.FloatField(allow_null=True)
    flexible = serializers.FloatField(allow_null=True)
    spot = serializers.FloatField(allow_null=True)


class OptimizeSerializer(serializers.Serializer):
    run_id = serializers.IntegerField(help_text="The queued run; poll status_url for its progress.")
    status = serializers.CharField(help_text="The run's status when answering (queued unless run inline).")
    status_url = serializers.CharField()
    timestamp = serializers.DateTimeField()
    total_revenue = serializers.FloatField(allow_null=True, help_text="Latest applied run: revenue, USD/h.")
    climate_savings = serializers.FloatField(
        allow_null=True,
        help_text="USD/h of cooling energy saved versus running the same IT load at the fleet's mean PUE.",
    )
    timezone_optimization = serializers.FloatField(
        allow_null=True, help_text="Latest applied run: inference revenue (follows regional demand), USD/h."
    )
    sla_performance = TierNumbersSerializer(help_text="Uptime delivered per tier over 30 days, percent.")
    claude_reasoning = serializers.CharField(
        allow_blank=True, help_text="Claude's narrative of the latest finished run, or the engine's explanation."
    )


class DashboardGlobalMetricsSerializer(serializers.Serializer):
    total_revenue = serializers.FloatField(allow_null=True, help_text="USD/h.")
    total_power_used = serializers.FloatField(help_text="Watts.")
    avg_cooling_efficiency = serializers.FloatField(allow_null=True, help_text="1 / fleet PUE (0-1).")
    renewable_energy_usage = serializers.FloatField(allow_null=True, help_text="Percent of the energy drawn.")
    active_sites = serializers.IntegerField()


class HistoryPointSerializer(serializers.Serializer):
    run_id = serializers.IntegerField()
    timestamp = serializers.DateTimeField()
    total_revenue = serializers.FloatField(allow_null=True, help_text="USD/h.")
    profit = serializers.FloatField(allow_null=True, help_text="USD/h.")


class DashboardMetricsSerializer(serializers.Serializer):
    global_metrics = DashboardGlobalMetricsSerializer()
    sites = OriginalSiteSerializer(many=True)
    sla_commitments = TierNumbersSerializer(help_text="kW committed now per tier.")
    optimization_history = HistoryPointSerializer(many=True)
    current_prices = PricingDataSerializer(allow_null=True)


class MinerDetailSpecSerializer(serializers.Serializer):
    name = serializers.CharField()
    power_w = serializers.FloatField()
    hashrate_th_per_s = serializers.FloatField()


class InferenceDetailSpecSerializer(serializers.Serializer):
    name = serializers.CharField()
    power_w = serializers.FloatField()
    tokens_per_s = serializers.FloatField()


class HardwareSpecsSerializer(serializers.Serializer):
    miners = serializers.DictField(child=MinerDetailSpecSerializer())
    inference = serializers.DictField(child=InferenceDetailSpecSerializer())


class InventoryBodySerializer(serializers.Serializer):
    total_inventory = HardwareCountsSerializer(help_text="Units installed across the fleet.")
    site_breakdown = serializers.DictField(child=HardwareCountsSerializer(), help_text="Units installed per site.")
    hardware_specs = HardwareSpecsSerializer()


class HardwareInventorySerializer(serializers.Serializer):
    inventory = InventoryBodySerializer()
    last_updated = serializers.DateTimeField()


class DebugStateSerializer(serializers.Serializer):
    is_initialized = serializers.BooleanField()
    has_current_prices = serializers.BooleanField(help_text="Prices younger than MAX_DATA_AGE_MINUTES.")
    current_prices_value = PricingDataSerializer(allow_null=True)
    site_count = serializers.IntegerField()
    sla_commitments = TierNumbersSerializer(help_text="kW committed now per tier.")
    last_updated = serializers.DateTimeField()


# Builders (pure over fleet_state's dict).


def _num(value) -> float | None:
    return None if value is None else float(value)


def _current_prices(state: dict) -> dict | None:
    """The newest market prices and the fleet's mean energy price, in the hackathon's units."""
    market = state["market"]
    prices = [row["energy_price_usd_per_mwh"] for row in state["sites"] if row["energy_price_usd_per_mwh"] is not None]
    if market is None and not prices:
        return None
    return {
        "energy_price": _hackathon_energy(sum(prices) / len(prices)) if prices else None,
        "hash_price": _num(units.usd_per_ph_day_to_hackathon_hash_price(market["hashprice_usd_per_ph_day"]))
        if market
        else None,
        "token_price": _num(units.usd_per_mtok_to_hackathon_token_price(market["inference_price_usd_per_mtok"]))
        if market
        else None,
        "timestamp": market["interval_start"] if market else None,
        "source": market["source"] if market else None,
    }


def _hackathon_energy(usd_per_mwh: float | None) -> float | None:
    return None if usd_per_mwh is None else round(float(units.usd_per_mwh_to_hackathon_energy_price(usd_per_mwh)), 6)


def _conditions(temperature_c: float | None) -> str:
    if temperature_c is None:
        return "unknown"
    for limit, word in ((0, "cold"), (12, "cool"), (22, "mild"), (30, "warm")):
        if temperature_c < limit:
            return word
    return "hot"


def _counts(allocation: list[dict], field: str) -> tuple[dict, dict]:
    """(hardware_inventory-shaped counts, allocation-shaped counts) of one site, from `field` per hardware."""
    grouped = {"miners": {"air": 0, "hydro": 0, "immersion": 0}, "inference": {"gpu": 0, "asic": 0}}
    flat = {"gpu_compute": 0, "asic_compute": 0, "air_miners": 0, "hydro_miners": 0, "immersion_miners": 0}
    for item in allocation:
        if item["hardware"] in ORIGINAL_HARDWARE:
            group, name, key, _ = ORIGINAL_HARDWARE[item["hardware"]]
            grouped[group][name] += item[field]
            flat[key] += item[field]
    return grouped, flat


def original_site(row: dict, prices: dict | None, now: datetime) -> dict:
    installed, _ = _counts(row["allocation"], "units_installed")
    _, running = _counts(row["allocation"], "units_running")
    moments = [moment for moment in (row["energy_price_at"], row["temperature_at"]) if moment]
    return {
        "site_id": row["code"],
        "name": row["name"],
        "location": {"lat": row["latitude"], "lon": row["longitude"], "timezone": row["time_zone"]},
        "hardware_inventory": installed,
        "allocation": running,
        "power_used": round(row["facility_kw"] * 1000, 1),
        "power_capacity": round(row["capacity_kw"] * 1000, 1),
        "power_utilization": row["utilization_pct"] or 0.0,
        "weather": {"temperature": row["temperature_c"], "conditions": _conditions(row["temperature_c"])},
        "current_temp": row["temperature_c"],
        "local_time": now.astimezone(ZoneInfo(row["time_zone"])).isoformat(timespec="seconds"),
        "cooling_efficiency": round(1 / row["pue"], 4),
        "pricing": {
            "hash_price": prices["hash_price"] if prices else None,
            "token_price": prices["token_price"] if prices else None,
            "energy_price": _hackathon_energy(row["energy_price_usd_per_mwh"]),
        },
        "energy_price": _hackathon_energy(row["energy_price_usd_per_mwh"]),
        "revenue": row["revenue_usd_per_h"] or 0.0,
        "uptime": 100.0 if row["status"] == SiteStatus.ONLINE else 0.0,
        "efficiency_score": round(100 / row["pue"], 1),
        "last_updated": max(moments) if moments else None,
    }


def _tier_numbers(tiers: list[dict], field: str) -> dict:
    values = {row["code"]: row[field] for row in tiers}
    return {code: values.get(code) for code in TierCode.values}


def _installed_totals(state: dict) -> dict:
    totals = {"gpu_units": 0, "asic_units": 0, "air_miners": 0, "hydro_miners": 0, "immersion_miners": 0}
    for row in state["sites"]:
        for item in row["allocation"]:
            if item["hardware"] in ORIGINAL_HARDWARE:
                totals[ORIGINAL_HARDWARE[item["hardware"]][3]] += item["units_installed"]
    return totals


def _fleet_efficiency(state: dict) -> float | None:
    fleet_pue = state["metrics"]["pue_average"]
    return round(1 / fleet_pue, 4) if fleet_pue else None


def mara_inventory(state: dict) -> dict:
    """The hardware catalogue in the hackathon's /inventory shape and units (W, hashrate units, tokens/interval)."""
    body: dict[str, dict[str, dict[str, float] | None]] = {
        "inference": {"asic": None, "gpu": None},
        "miners": {"air": None, "hydro": None, "immersion": None},
    }
    for model in state["hardware"]:
        if model["code"] not in ORIGINAL_HARDWARE:
            continue
        group, name, _, _ = ORIGINAL_HARDWARE[model["code"]]
        power = float(units.kw_to_watts(model["power_kw_per_unit"]))
        if group == "miners":
            hashrate = float(units.th_per_s_to_hackathon_hashrate(model["hashrate_th_per_s"]))
            body[group][name] = {"hashrate": round(hashrate, 3), "power": power}
        else:
            tokens = float(units.tokens_per_s_to_hackathon_tokens(model["tokens_per_s"]))
            body[group][name] = {"power": power, "tokens": round(tokens, 3)}
    return body


def _climate_savings(state: dict) -> float | None:
    """USD/h: Σ IT kW x (mean PUE - site PUE) x price / 1000 over the running sites (negative if placement is poor)."""
    rows = [row for row in state["sites"] if row["status"] == SiteStatus.ONLINE]
    if not rows or not any(row["it_kw"] for row in rows):
        return None
    mean_pue = sum(row["pue"] for row in rows) / len(rows)
    saved = sum(
        row["it_kw"] * (mean_pue - row["pue"]) * (row["energy_price_usd_per_mwh"] or 0.0) / 1000 for row in rows
    )
    return round(saved, 2)


def _inference_revenue(run) -> float | None:
    """USD/h of inference revenue over the run's horizon (its stored breakdown)."""
    details = (run.details or {}) if run else {}
    hours = details.get("horizon_hours")
    if not hours:
        return None
    return round(sum(site.get("inference_revenue_usd", 0.0) for site in details.get("sites", [])) / hours, 2)


# Views.

STAFF = (permissions.IsAuthenticated, permissions.IsAdminUser)


class HealthView(APIView):
    """Liveness and readiness: the database answers; `initialized` once sites exist. Public, unthrottled."""

    permission_classes = (permissions.AllowAny,)
    authentication_classes = ()
    throttle_classes = ()

    @extend_schema(responses={200: HealthSerializer, 503: HealthSerializer}, summary="Health (original API)")
    def get(self, request):
        now = timezone.now()
        try:
            initialized = Site.objects.exists()
        except DatabaseError:
            body = {"status": "unhealthy", "initialized": False, "timestamp": now}
            return Response(HealthSerializer(body).data, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(HealthSerializer({"status": "healthy", "initialized": initialized, "timestamp": now}).data)


class InitializeView(APIView):
    """Seed the sites, hardware, fleet and tiers (idempotent) and queue a price and weather refresh if stale."""

    permission_classes = STAFF

    @extend_schema(request=None, responses={200: InitializeSerializer}, summary="Initialize (original API)")
    def post(self, request):
        from sites.tasks import refresh_market_prices, refresh_weather

        with transaction.atomic():
            outcomes = seed_physical_world() + seed_tiers()
            changed = sum(n for (_, outcome), n in outcomes.items() if outcome != "unchanged")
            state = fleet_state(now=timezone.now())
            refreshing = state["status"]["state"] != "online"
            if refreshing:
                refresh_market_prices.delay_on_commit()
                refresh_weather.delay_on_commit()
        if refreshing:  # an eager worker (tests, demos) has refreshed by now
            state = fleet_state(now=timezone.now())
        if changed:
            message = f"Seeded: {changed} rows created or updated; {len(state['sites'])} sites."
        else:
            message = f"Already initialized: {len(state['sites'])} sites, nothing changed."
        if state["status"]["state"] != "online":
            message += " Prices and weather are being refreshed."
        body = {
            "status": "initialized" if changed else "already_initialized",
            "message": message,
            "pricing_data": _current_prices(state),
            "mara_inventory": mara_inventory(state),
            "total_sites": len(state["sites"]),
        }
        return Response(InitializeSerializer(body).data)


class SitesStatusView(APIView):
    """Every site's hardware, allocation, power, weather, prices and revenue, and fleet totals."""

    permission_classes = STAFF

    @extend_schema(responses={200: SitesStatusSerializer}, summary="Sites status (original API)")
    def get(self, request):
        now = timezone.now()
        state = fleet_state(now=now)
        prices = _current_prices(state)
        sites = [original_site(row, prices, now) for row in state["sites"]]
        metrics = state["metrics"]
        body = {
            "sites": sites,
            "total_sites": len(sites),
            "global_metrics": {
                "total_power_used": round(metrics["facility_power_mw"] * 1e6, 1),
                "total_power_capacity": round(metrics["capacity_mw"] * 1e6, 1),
                "global_utilization": metrics["utilization_pct"] or 0.0,
                "average_efficiency": _fleet_efficiency(state),
                "average_uptime": round(sum(site["uptime"] for site in sites) / len(sites), 1) if sites else None,
                "total_hardware": _installed_totals(state),
                "active_sites": metrics["sites_online"],
            },
            "last_updated": now,
        }
        return Response(SitesStatusSerializer(body).data)


class OptimizeView(APIView):
    """Queue an optimization (answered at once with 202); the body also carries the latest applied result."""

    permission_classes = STAFF

    @extend_schema(request=None, responses={202: OptimizeSerializer}, summary="Optimize (original API)")
    def post(self, request):
        run = request_optimization(trigger=RunTrigger.API, actor=request.user)
        run.refresh_from_db()  # a worker in eager mode (tests, demos) has already finished it
        now = timezone.now()
        state = fleet_state(now=now)
        applied = state["applied_run"]
        reasoning_run = run if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING) else applied
        reasoning = ""
        if reasoning_run is not None:
            reasoning = reasoning_run.advisor_narrative or reasoning_run.explanation
        status_url = reverse("dashboard-run", kwargs={"pk": run.pk})
        body = {
            "run_id": run.pk,
            "status": run.status,
            "status_url": status_url,
            "timestamp": now,
            "total_revenue": state["metrics"]["revenue_usd_per_h"],
            "climate_savings": _climate_savings(state),
            "timezone_optimization": _inference_revenue(applied),
            "sla_performance": _tier_numbers(state["tiers"], "uptime_pct"),
            "claude_reasoning": reasoning,
        }
        return Response(
            OptimizeSerializer(body).data, status=status.HTTP_202_ACCEPTED, headers={"Location": status_url}
        )


class DashboardMetricsView(APIView):
    """Fleet metrics, sites, SLA commitments, recent runs and current prices (writes nothing)."""

    permission_classes = STAFF

    @extend_schema(responses={200: DashboardMetricsSerializer}, summary="Dashboard metrics (original API)")
    def get(self, request):
        now = timezone.now()
        state = fleet_state(now=now)
        prices = _current_prices(state)
        metrics = state["metrics"]
        history = run_history(now=now, hours=HISTORY_HOURS, limit=HISTORY_RUNS)
        body = {
            "global_metrics": {
                "total_revenue": metrics["revenue_usd_per_h"],
                "total_power_used": round(metrics["facility_power_mw"] * 1e6, 1),
                "avg_cooling_efficiency": _fleet_efficiency(state),
                "renewable_energy_usage": metrics["renewable_share_pct"],
                "active_sites": metrics["sites_online"],
            },
            "sites": [original_site(row, prices, now) for row in state["sites"]],
            "sla_commitments": _tier_numbers(state["tiers"], "committed_kw"),
            "optimization_history": [
                {"run_id": run_id, "timestamp": moment, "total_revenue": revenue, "profit": profit}
                for run_id, moment, revenue, profit in zip(
                    history["id"], history["t"], history["revenue_usd_per_h"], history["profit_usd_per_h"], strict=True
                )
            ],
            "current_prices": prices,
        }
        return Response(DashboardMetricsSerializer(body).data)


class HardwareInventoryView(APIView):
    """Units installed, fleet-wide and per site, and each hardware model's specification (real units)."""

    @extend_schema(responses={200: HardwareInventorySerializer}, summary="Hardware inventory (original API)")
    def get(self, request):
        now = timezone.now()
        state = fleet_state(now=now)
        total = {"miners": {"air": 0, "hydro": 0, "immersion": 0}, "inference": {"gpu": 0, "asic": 0}}
        breakdown = {}
        for row in state["sites"]:
            installed, _ = _counts(row["allocation"], "units_installed")
            breakdown[row["code"]] = installed
            for group, counts in installed.items():
                for name, value in counts.items():
                    total[group][name] += value
        specs: dict[str, dict] = {"miners": {}, "inference": {}}
        for model in state["hardware"]:
            if model["code"] not in ORIGINAL_HARDWARE:
                continue
            group, name, _, _ = ORIGINAL_HARDWARE[model["code"]]
            spec = {"name": model["name"], "power_w": float(units.kw_to_watts(model["power_kw_per_unit"]))}
            if group == "miners":
                spec["hashrate_th_per_s"] = model["hashrate_th_per_s"]
            else:
                spec["tokens_per_s"] = model["tokens_per_s"]
            specs[group][name] = spec
        body = {
            "inventory": {"total_inventory": total, "site_breakdown": breakdown, "hardware_specs": specs},
            "last_updated": now,
        }
        return Response(HardwareInventorySerializer(body).data)


class DebugStateView(APIView):
    """Whether the system is seeded and its prices fresh, and what is committed (staff only)."""

    permission_classes = STAFF

    @extend_schema(responses={200: DebugStateSerializer}, summary="Debug state (original API)")
    def get(self, request):
        now = timezone.now()
        state = fleet_state(now=now)
        body = {
            "is_initialized": bool(state["sites"]),
            "has_current_prices": state["status"]["state"] == "online",
            "current_prices_value": _current_prices(state),
            "site_count": len(state["sites"]),
            "sla_commitments": _tier_numbers(state["tiers"], "committed_kw"),
            "last_updated": now,
        }
        return Response(DebugStateSerializer(body).data)


def _route(route: str, view, name: str):
    """The original's path exactly, and with a trailing slash."""
    return re_path(rf"^{route}/?$", view.as_view(), name=name)


original_urlpatterns = [
    _route("health", HealthView, "original-health"),
    _route("initialize", InitializeView, "original-initialize"),
    _route("sites/status", SitesStatusView, "original-sites-status"),
    _route("optimize", OptimizeView, "original-optimize"),
    _route("dashboard/metrics", DashboardMetricsView, "original-dashboard-metrics"),
    _route("hardware/inventory", HardwareInventoryView, "original-hardware-inventory"),
    _route("debug/state", DebugStateView, "original-debug-state"),
]
