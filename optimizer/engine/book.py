"""The SLA book as the formulation sees it: interchangeable contracts merged into one commitment per group.

Why: an operator's book holds hundreds to thousands of running contracts, but the placement decision only tells
apart contracts that may sit on different sites or carry different rules. Per-contract columns made the model grow
with the book and, worse, gave HiGHS long chains of parallel columns that its presolve aggregator took tens of
seconds on (100 contracts: 28 s in presolve for a 5,780-column LP; docs/optimizer.md "A booked fleet").

A group is every commitment with the same tier, allowed sites, ``min_sites`` and N-1 flag. Each of the group's
rows (serve, per-site cap, N-1) is linear and homogeneous in the contract's capacity, so a group plan split in
proportion to capacity (``share = capacity_c / capacity_group``) is a feasible plan for every member, and the
group's price and penalty are the capacity-weighted means, so the group's money equals the sum of its members'
(``sum_c share_c x U x price_c = U x mean price``). What aggregation gives up: inside a group, a shortfall is
shared in proportion to capacity instead of landing on the cheapest contract first (contracts of one tier differ
only by their quoted price). A group of one contract is that contract, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .problem import Commitment


@dataclass(frozen=True, eq=False)
class Book:
    """Groups of commitments: ``groups[g]`` is what the formulation models, ``group_of[c]`` and ``share[c]`` map
    each commitment of the problem back to its group and its proportion of the group's kW."""

    groups: tuple[Commitment, ...]
    group_of: np.ndarray  # [C] group index of each problem commitment
    share: np.ndarray  # [C] capacity_c / capacity of its group (equal shares in a group of zero capacity)
    size: np.ndarray  # [G] number of commitments in each group

    def members(self, group: int) -> np.ndarray:
        """Commitment indices of one group."""
        return np.flatnonzero(self.group_of == group)


def group_key(commitment: Commitment) -> tuple[object, ...]:
    """What makes two commitments interchangeable for the formulation."""
    return (commitment.tier, commitment.allowed_sites, commitment.min_sites, commitment.n_minus_1)


def aggregate_commitments(commitments: tuple[Commitment, ...]) -> Book:
    """Merge interchangeable commitments (``group_key``) into one commitment per group, in order of first member."""
    index: dict[tuple[object, ...], int] = {}
    group_of = np.zeros(len(commitments), dtype=np.int64)
    for ci, c in enumerate(commitments):
        group_of[ci] = index.setdefault(group_key(c), len(index))
    size = np.bincount(group_of, minlength=len(index)) if commitments else np.zeros(0, dtype=np.int64)
    cap = np.array([c.capacity_kw for c in commitments], dtype=float)
    group_cap = np.bincount(group_of, weights=cap, minlength=len(index)) if commitments else np.zeros(0)
    share = np.where(group_cap[group_of] > 0, cap / np.where(group_cap > 0, group_cap, 1.0)[group_of], 0.0)
    share = np.where(group_cap[group_of] > 0, share, 1.0 / np.maximum(size[group_of], 1))
    groups: list[Commitment] = []
    used: set[str] = {str(c.id) for c in commitments}
    for g in range(len(index)):
        members = np.flatnonzero(group_of == g)
        first = commitments[int(members[0])]
        if members.size == 1:
            groups.append(first)
            continue
        weights = share[members]
        prices = np.array([commitments[i].price_usd_per_kwh for i in members])
        penalties = np.array([commitments[i].penalty_usd_per_kwh for i in members])
        n1_prices = np.array([commitments[i].n_minus_1_price for i in members])
        label = f"{members.size} {first.tier} contracts ({_where(first)})"
        label = label if label not in used else f"{label} #{g}"
        used.add(label)
        groups.append(
            replace(
                first,
                id=label,
                capacity_kw=float(group_cap[g]),
                price_usd_per_kwh=float(prices @ weights),
                penalty_usd_per_kwh=float(penalties @ weights),
                n_minus_1_usd_per_kwh=float(n1_prices @ weights),
            )
        )
    return Book(groups=tuple(groups), group_of=group_of, share=share, size=size)


def _where(commitment: Commitment) -> str:
    return "+".join(commitment.allowed_sites) if commitment.allowed_sites is not None else "any site"
