"""Pure simulators of the physical and market world: energy prices, hashprice, inference
prices and demand, outdoor temperatures, and the cooling (PUE) model.

No Django import anywhere in this package: the Django services build profiles from the
database, call these functions and store the arrays. Every simulator is vectorized with numpy
and deterministic for a given seed. Models and measured statistics: docs/simulation.md.
"""

from __future__ import annotations

from sites.simulation.cooling import (
    COOLING_PARAMETERS,
    COOLING_TYPES,
    CoolingParameters,
    cooling_overhead_kw,
    cooling_parameters,
    hall_cooling,
    hall_pue,
    hall_pue_grid,
    pue,
)
from sites.simulation.prices import (
    GRID_REGIONS,
    INFERENCE_REGIONS,
    EnergyPriceSeries,
    GridRegion,
    SitePriceProfile,
    count_runs,
    derive_site_price_profile,
    simulate_energy_price_series,
    simulate_energy_prices,
    simulate_fleet_prices,
    simulate_hashprice,
    simulate_inference_demand,
    simulate_inference_price,
)
from sites.simulation.weather import (
    CLIMATE_ZONES,
    ClimateProfile,
    HeatWave,
    derive_climate_profile,
    expected_temperatures,
    floor_to_step,
    simulate_temperatures,
    simulation_timestamps,
)

__all__ = [
    "CLIMATE_ZONES",
    "COOLING_PARAMETERS",
    "COOLING_TYPES",
    "GRID_REGIONS",
    "INFERENCE_REGIONS",
    "ClimateProfile",
    "CoolingParameters",
    "EnergyPriceSeries",
    "GridRegion",
    "HeatWave",
    "SitePriceProfile",
    "cooling_overhead_kw",
    "cooling_parameters",
    "count_runs",
    "derive_climate_profile",
    "derive_site_price_profile",
    "expected_temperatures",
    "floor_to_step",
    "hall_cooling",
    "hall_pue",
    "hall_pue_grid",
    "pue",
    "simulate_energy_price_series",
    "simulate_energy_prices",
    "simulate_fleet_prices",
    "simulate_hashprice",
    "simulate_inference_demand",
    "simulate_inference_price",
    "simulate_temperatures",
    "simulation_timestamps",
]
