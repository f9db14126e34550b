"""The ERCOT 4CP peak predictor on the real summers of 2023 and 2024: in sample, its neighbours, and out of sample.

Data: ERCOT's hourly native load 2023-2024 (data/ercot_native_load_hourly_2023-2024.csv, copied from the shared
real data). Prints:
- in sample: the default `grid.peaks.PeakPredictor` (its parameters were chosen looking at both summers) against
  the naive weekday rule, peaks caught and hours curtailed per summer;
- its neighbours: how many of the `grid.peaks.PARAMETER_GRID` sets also catch 4/4 in both summers within 80 h
  (whether the defaults sit on a knife edge);
- out of sample: the parameters fitted on one summer alone (every peak caught with the fewest hours), judged on
  the other summer, with how the sets tied for best and all the sets that caught every training peak fare there.

    .venv/bin/python bench/grid_peaks.py [--load FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grid.peaks import (  # noqa: E402
    evaluate,
    features,
    out_of_sample,
    out_of_sample_lines,
    parameter_sets,
    read_load_csv,
    score_flags,
    whole_summers,
)

LOAD = ROOT / "data" / "ercot_native_load_hourly_2023-2024.csv"
MAX_HOURS = 80


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", default=str(LOAD))
    args = parser.parse_args()
    started = time.perf_counter()
    series = read_load_csv(args.load)
    print("In sample (default parameters, chosen looking at both summers):")
    print(f"{'summer':<8}{'predictor':>10}{'hours':>7}{'naive':>8}{'hours':>7}")
    for r in evaluate(series):
        print(
            f"{r.year:<8}{f'{r.predictor_caught}/4':>10}{r.predictor_hours:>7}{f'{r.naive_caught}/4':>8}{r.naive_hours:>7}"
        )
    known, summers = features(series), whole_summers(series)
    sets = parameter_sets()
    good = 0
    for predictor in sets:
        flags = predictor.probabilities(series, known) >= 0.5
        scores = [score_flags(flags, summer, peaks) for summer, peaks in summers.values()]
        good += all(
            caught == len(peaks) and hours <= MAX_HOURS
            for (caught, hours), (_, peaks) in zip(scores, summers.values(), strict=True)
        )
    print(f"Neighbours: {good} of {len(sets)} parameter sets catch 4/4 in every summer within {MAX_HOURS} h")
    for line in out_of_sample_lines(out_of_sample(series)):
        print(line)
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
