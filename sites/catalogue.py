"""Reference data of the fleet: the ten sites of the original, the hardware catalogue and the inventory.

Pure data, no I/O. Coordinates, time zones, cooling, renewable share and energy-cost multipliers are the
original product's (shared/product/original-api.md). Every hardware and market figure carries its public source
in `SOURCES` (rendered with the revenue per IT kWh of each machine in docs/economics.md):
- air-cooled ASIC miner (Antminer S21 class): 3.5 kW, 200 TH/s (17.5 J/TH);
- hydro-cooled ASIC miner (S21 XP Hyd class): 5.7 kW, 473 TH/s (12.1 J/TH);
- immersion-cooled ASIC miner (S21 Imm class, overclocked): 7.0 kW, 500 TH/s (14.0 J/TH);
- GPU inference node (8 x H100 SXM) serving a 70B-class model: 8.0 kW typical draw under serving (10.2 kW
  nameplate), 12,000 output tokens/s batched; 70B-class tokens sell at a list price of 0.88 USD per million.
The ASIC inference node of earlier versions (LPU class, 40,000 tokens/s at 8 kW) had no public aggregate
throughput or power figure behind it and is retired (`RETIRED_HARDWARE`): seeding leaves none of it available.
Fleet totals: 500 air, 200 hydro, 100 immersion miners and 1,000 GPU inference nodes. Eight of the ten sites
have more installed IT power than facility capacity, so allocation is a real decision.
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
    HardwareSeed(
        "inference_gpu", "GPU inference node (8x H100, 70B class)", "inference", "air", "8.000", None, "12000"
    ),
)
# Hardware of earlier catalogues without a public figure: seeding makes none of its units available.
RETIRED_HARDWARE = ("inference_asic",)

# Units installed per site: (air, hydro, immersion) miners and GPU nodes (the retired ASIC nodes' racks hold GPU
# nodes now: 1,300 in all).
INVENTORY: dict[str, tuple[int, int, int, int]] = {
    "site_1_nordic": (120, 0, 0, 130),
    "site_2_canada": (0, 120, 0, 130),
    "site_3_norway": (0, 0, 100, 130),
    "site_4_singapore": (0, 0, 0, 190),
    "site_5_texas": (200, 0, 0, 130),
    "site_6_ireland": (60, 0, 0, 130),
    "site_7_japan": (0, 0, 0, 160),
    "site_8_australia": (50, 0, 0, 100),
    "site_9_chile": (70, 0, 0, 70),
    "site_10_germany": (0, 80, 0, 130),
}
INVENTORY_COLUMNS = ("miner_air", "miner_hydro", "miner_immersion", "inference_gpu")
FLEET_TOTALS = {
    "miner_air": 500,
    "miner_hydro": 200,
    "miner_immersion": 100,
    "inference_gpu": 1300,
}


@dataclass(frozen=True)
class ModelClass:
    """A class of open-weight model served on one GPU node: its throughput there and its list price."""

    code: str
    name: str
    tokens_per_s_per_node: int  # output tokens/s of one 8 x H100 node, batched serving within latency targets
    list_price_usd_per_mtok: Decimal  # serverless list price (input and output tokens alike), stable for months
    throughput_basis: str


MODEL_CLASSES: tuple[ModelClass, ...] = (
    ModelClass("8b", "8B class (Llama 3.1 8B)", 40000, Decimal("0.18"),
               "derived: eight single-GPU replicas at ~5,000 tokens/s each"),
    ModelClass("70b", "70B class (Llama 3.x 70B)", 12000, Decimal("0.88"),
               "55 % of the MLPerf Inference v4.0 server result (~21,800 tokens/s): interactive latency"),
    ModelClass("405b", "405B class (Llama 3.1 405B, FP8)", 2100, Decimal("3.50"),
               "derived: the 70B figure scaled by active parameters (70 / 405)"),
)  # fmt: skip
FLEET_MODEL_CLASS = "70b"  # what the fleet's GPU nodes serve; its list price is the simulator's token price level

# Market references the economics are checked against (docs/economics.md).
GPU_RENTAL_USD_PER_GPU_HOUR = (Decimal("2.00"), Decimal("3.00"))  # H100 SXM on demand, specialty clouds, 2025-26
GPUS_PER_NODE = 8
GPU_NODE_NAMEPLATE_KW = Decimal("10.2")  # NVIDIA DGX H100 maximum system power
HASHPRICE_USD_PER_PH_DAY = Decimal("50")  # Hashrate Index hashprice, 2025 range about 40-60
HOURS_PER_MONTH = Decimal("730")

SOURCES: dict[str, str] = {
    "miner_air": "Bitmain Antminer S21 specification: 200 TH/s, 3,500 W, 17.5 J/TH",
    "miner_hydro": "Bitmain Antminer S21 XP Hyd specification: 473 TH/s, 5,676 W, 12 J/TH",
    "miner_immersion": "Bitmain Antminer S21 Imm class, overclocked in immersion: 500 TH/s at about 7 kW",
    "inference_gpu": "NVIDIA DGX H100 datasheet: 8 x H100 SXM, 10.2 kW maximum system power; the 8.0 kW typical "
    "serving draw is our assumption (about 80 % of the maximum: GPUs run below their 700 W TDP while serving); "
    "throughput: the 70B class",
    "mlperf": "MLCommons MLPerf Inference v4.0 (NVIDIA technical blog, March 2024): Llama 2 70B on 8 x H100, "
    "about 21,800 tokens/s server and 24,500 tokens/s offline",
    "token_prices": "Together AI serverless price list (2024-25): Llama 3.1 8B Turbo 0.18, Llama 3.x 70B Turbo "
    "0.88, Llama 3.1 405B Turbo 3.50 USD per million tokens",
    "gpu_rental": "Cloud GPU price indexes (2025-26): H100 SXM on demand about 2.0-3.0 USD per GPU-hour at "
    "specialty clouds, 3.5-5 at hyperscalers; an 8 x H100 node 16-24 USD/h",
    "hashprice": "Hashrate Index hashprice (Luxor), 2025: about 40-60 USD per PH/s per day",
    "asic_inference": "No public aggregate throughput and power for an LPU-class appliance (published figures are "
    "per-user speeds such as 300 tokens/s on Llama 2 70B): retired",
}


def model_class(code: str = FLEET_MODEL_CLASS) -> ModelClass:
    """The model class `code` (ValueError naming the known ones otherwise)."""
    for row in MODEL_CLASSES:
        if row.code == code:
            return row
    raise ValueError(f"unknown model class {code!r}; expected one of {', '.join(m.code for m in MODEL_CLASSES)}")


def list_price_usd_per_mtok(code: str = FLEET_MODEL_CLASS) -> Decimal:
    """The list price of a model class, USD per million tokens."""
    return model_class(code).list_price_usd_per_mtok


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
