"""Enumerations of the physical world."""

from django.db import models


class SiteStatus(models.TextChoices):
    ONLINE = "online", "Online"
    MAINTENANCE = "maintenance", "Maintenance"
    OFFLINE = "offline", "Offline"


class CoolingType(models.TextChoices):
    FREE_AIR = "free_air", "Free air"
    AIR = "air", "Air (chillers)"
    ADVANCED_AC = "advanced_ac", "Advanced AC"
    PRECISION_AC = "precision_ac", "Precision AC"
    EVAPORATIVE = "evaporative", "Evaporative"
    DISTRICT = "district", "District cooling"
    HYDRO = "hydro", "Hydro (water-cooled)"
    IMMERSION = "immersion", "Immersion"


class ClimateZone(models.TextChoices):
    SUBARCTIC = "subarctic", "Subarctic"
    OCEANIC = "oceanic", "Temperate oceanic"
    CONTINENTAL = "continental", "Temperate continental"
    HUMID_SUBTROPICAL = "humid_subtropical", "Humid subtropical"
    MEDITERRANEAN = "mediterranean", "Mediterranean"
    TROPICAL = "tropical", "Tropical"
    ARID = "arid", "Arid"


class MarketRegion(models.TextChoices):
    """Regions of inference demand; the day's demand peak moves APAC -> Europe -> Americas."""

    APAC = "apac", "Asia-Pacific"
    EUROPE = "europe", "Europe"
    AMERICAS = "americas", "Americas"


class HardwareKind(models.TextChoices):
    MINER = "miner", "Bitcoin miner"
    INFERENCE = "inference", "AI inference"


class DataSource(models.TextChoices):
    SIMULATOR = "simulator", "Simulator"
    HACKATHON_API = "hackathon_api", "Hackathon market API"
    CSV_MARA = "csv_mara", "CSV (hackathon trace)"
    CSV = "csv", "CSV (energyarb)"
    OPEN_METEO = "open_meteo", "Open-Meteo forecast API"
    MANUAL = "manual", "Manual entry"
    CSV_TIDY = "csv_tidy", "CSV (tidy real-market)"
    CSV_ERCOT = "csv_ercot", "CSV (ERCOT MIS)"
    CSV_ENTSOE = "csv_entsoe", "CSV (ENTSO-E export)"
    XML_ENTSOE = "xml_entsoe", "XML (ENTSO-E API document)"
    CSV_AEMO = "csv_aemo", "CSV (AEMO price and demand)"
    CSV_ECB = "csv_ecb", "CSV (ECB reference rates)"
    ERCOT_API = "ercot_api", "ERCOT (gridstatus)"
    ENTSOE_API = "entsoe_api", "ENTSO-E Transparency API"
    AEMO_FILES = "aemo_files", "AEMO public files"
