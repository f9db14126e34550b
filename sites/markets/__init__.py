"""Real electricity markets: price nodes, FX rates, ancillary-service prices, system load, their file formats and
live clients. Layer: part of ``sites`` (the physical and market world); imports nothing above it."""
