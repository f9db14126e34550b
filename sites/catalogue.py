"""Reference data of the fleet: the ten sites of the original, the hardware catalogue and the inventory.

Pure data, no I/O. Coordinates, time zones, cooling, renewable share and energy-cost multipliers are the
original product's (shared/product/original-api.md). Hardware figures are physically sensible for 2025-26
equipment:
- air-cooled ASIC miner (Antminer S21 class): 3.5 kW, 200 TH/s (17.5 J/TH);
- hydro-cooled ASIC miner (S21 XP Hyd class): 5.7 kW, 473 TH/s (12.1 J/TH);
- immersion-cooled ASIC miner (S21 Imm class, overclocked): 7.0 kW, 500 TH/s (14.0 J/TH);
- GPU inference node (8 x H100 SXM server): 10.2 kW, 12,000 output tokens/s with batched serving;
- ASIC inference node (LPU-class appliance): 8.0 kW, 40,000 output tokens/s.
Fleet totals: 500 air, 200 hydro, 100 immersion miners, 1,000 GPU and 300 ASIC inference units. Eight of
the ten sites have more installed IT power than facility capacity, so allocation is a real decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class SiteSeed:
    code: str
    name: str
    country: str
    latitude: str
    longitude: str
    time_zone: str
    climate_zone: str
    cooling_type: str
    market_region: str
    power_capacity_kw: int
    renewable_share: str
    grid_region: str
    grid_carbon_kg_per_mwh: int
    energy_cost_multiplier: str


@dataclass(frozen=True)
class HardwareSeed:
    code: str
    name: str
    kind: str
    cooling_type: str
    power_kw_per_unit: str
    hashrate_th_per_s: str | None
    tokens_per_s: str | None


SITES: tuple[SiteSeed, ...] = (
    SiteSeed("site_1_nordic", "Nordic Iceland", "IS", "64.1466", "-21.9426", "Atlantic/Reykjavik", "subarctic",
             "free_air", "europe", 1300, "0.90", "IS-LANDSNET", 400, "0.6"),
    SiteSeed("site_2_canada", "Canada Vancouver", "CA", "49.2827", "-123.1207", "America/Vancouver", "oceanic",
             "hydro", "americas", 1500, "0.70", "CA-BC", 450, "0.7"),
    SiteSeed("site_3_norway", "Norway Oslo", "NO", "59.9139", "10.7522", "Europe/Oslo", "continental",
             "immersion", "europe", 1500, "0.95", "NO1", 400, "0.5"),
    SiteSeed("site_4_singapore", "Singapore Tropical", "SG", "1.3521", "103.8198", "Asia/Singapore", "tropical",
             "advanced_ac", "apac", 3000, "0.30", "SG-USEP", 420, "1.4"),
    SiteSeed("site_5_texas", "Texas USA", "US", "32.7767", "-96.7970", "America/Chicago", "humid_subtropical",
             "air", "americas", 1500, "0.40", "ERCOT", 450, "0.8"),
    SiteSeed("site_6_ireland", "Ireland Dublin", "IE", "53.3498", "-6.2603", "Europe/Dublin", "oceanic",
             "free_air", "europe", 1100, "0.60", "IE-SEM", 450, "0.9"),
    SiteSeed("site_7_japan", "Japan Tokyo", "JP", "35.6762", "139.6503", "Asia/Tokyo", "humid_subtropical",
             "precision_ac", "apac", 2200, "0.20", "JP-TOKYO", 550, "1.2"),
    SiteSeed("site_8_australia", "Australia Sydney", "AU", "-33.8688", "151.2093", "Australia/Sydney",
             "humid_subtropical", "evaporative", "apac", 900, "0.50", "NEM-NSW", 750, "1.0"),
    SiteSeed("site_9_chile", "Chile Santiago", "CL", "-33.4489", "-70.6693", "America/Santiago", "mediterranean",
             "air", "americas", 700, "0.80", "CL-SEN", 600, "0.7"),
    SiteSeed("site_10_germany", "Germany Berlin", "DE", "52.5200", "13.4050", "Europe/Berlin", "continental",
             "district", "europe", 1300, "0.60", "DE-LU", 650, "1.1"),
)  # fmt: skip

HARDWARE: tuple[HardwareSeed, ...] = (
    HardwareSeed("miner_air", "Air-cooled ASIC miner (S21 class)", "miner", "air", "3.500", "200", None),
    HardwareSeed("miner_hydro", "Hydro-cooled ASIC miner (S21 XP Hyd class)", "miner", "hydro", "5.700", "473", None),
    HardwareSeed("miner_immersion", "Immersion ASIC miner (S21 Imm class)", "miner", "immersion", "7.000", "500", None),
    HardwareSeed("inference_gpu", "GPU inference node (8x H100)", "inference", "air", "10.200", None, "12000"),
    HardwareSeed("inference_asic", "ASIC inference node (LPU class)", "inference", "air", "8.000", None, "40000"),
)

# Units installed per site: (air, hydro, immersion, gpu, asic) miners / nodes.
INVENTORY: dict[str, tuple[int, int, int, int, int]] = {
    "site_1_nordic": (120, 0, 0, 100, 30),
    "site_2_canada": (0, 120, 0, 100, 30),
    "site_3_norway": (0, 0, 100, 100, 30),
    "site_4_singapore": (0, 0, 0, 150, 40),
    "site_5_texas": (200, 0, 0, 100, 30),
    "site_6_ireland": (60, 0, 0, 100, 30),
    "site_7_japan": (0, 0, 0, 120, 40),
    "site_8_australia": (50, 0, 0, 80, 20),
    "site_9_chile": (70, 0, 0, 50, 20),
    "site_10_germany": (0, 80, 0, 100, 30),
}
INVENTORY_COLUMNS = ("miner_air", "miner_hydro", "miner_immersion", "inference_gpu", "inference_asic")
FLEET_TOTALS = {
    "miner_air": 500,
    "miner_hydro": 200,
    "miner_immersion": 100,
    "inference_gpu": 1000,
    "inference_asic": 300,
}


def site_defaults(seed: SiteSeed) -> dict:
    return {
        "name": seed.name,
        "country": seed.country,
        "latitude": Decimal(seed.latitude),
        "longitude": Decimal(seed.longitude),
        "time_zone": seed.time_zone,
        "climate_zone": seed.climate_zone,
        "cooling_type": seed.cooling_type,
        "market_region": seed.market_region,
        "power_capacity_kw": Decimal(seed.power_capacity_kw),
        "renewable_share": Decimal(seed.renewable_share),
        "grid_region": seed.grid_region,
        "grid_carbon_kg_per_mwh": Decimal(seed.grid_carbon_kg_per_mwh),
        "energy_cost_multiplier": Decimal(seed.energy_cost_multiplier),
    }


def hardware_defaults(seed: HardwareSeed) -> dict:
    return {
        "name": seed.name,
        "kind": seed.kind,
        "cooling_type": seed.cooling_type,
        "power_kw_per_unit": Decimal(seed.power_kw_per_unit),
        "hashrate_th_per_s": Decimal(seed.hashrate_th_per_s) if seed.hashrate_th_per_s else None,
        "tokens_per_s": Decimal(seed.tokens_per_s) if seed.tokens_per_s else None,
    }
