"""The contract state machine is enforced by services and audited."""

from datetime import timedelta

import pytest
import time_machine

from sla.choices import CONTRACT_TRANSITIONS, ContractStatus
from sla.models import Placement
from sla.services import (
    IllegalTransition,
    approve_contract,
    cancel_contract,
    complete_contract,
    reject_contract,
    terminate_contract,
    transition_contract,
)
from tests.factories import T0, ContractFactory, PlacementFactory, UserFactory

pytestmark = pytest.mark.django_db

ALL = list(ContractStatus.values)
LEGAL = [(a, b) for a in ALL for b in ALL if b in CONTRACT_TRANSITIONS[a]]
ILLEGAL = [(a, b) for a in ALL for b in ALL if b not in CONTRACT_TRANSITIONS[a]]


@pytest.mark.parametrize(("source", "target"), LEGAL)
def test_legal_transition_is_applied(source, target):
    contract = ContractFactory(status=source)
    transition_contract(contract=contract, to_status=target, reason="test")
    contract.refresh_from_db()
    assert contract.status == target
    assert contract.status_reason == "test"


@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_illegal_transition_is_refused_and_changes_nothing(source, target):
    contract = ContractFactory(status=source)
    with pytest.raises(IllegalTransition):
        transition_contract(contract=contract, to_status=target)
    contract.refresh_from_db()
    assert contract.status == source


def test_lifecycle_happy_path_and_terminal_states():
    contract = ContractFactory()
    approve_contract(contract=contract)
    complete_contract(contract=contract)
    assert contract.status == ContractStatus.COMPLETED
    for move in (approve_contract, reject_contract, terminate_contract, cancel_contract):
        with pytest.raises(IllegalTransition):
            move(contract=contract)


def test_transition_is_recorded_with_who_and_why():
    staff = UserFactory(username="ops", is_staff=True)
    contract = ContractFactory()
    approve_contract(contract=contract, actor=staff, reason="capacity checked")
    latest = contract.history.first()
    assert latest.status == ContractStatus.ACTIVE
    assert latest.history_user == staff
    assert latest.history_change_reason == "capacity checked"


def test_terminating_closes_running_placements_and_drops_future_ones():
    contract = ContractFactory(status=ContractStatus.ACTIVE, starts_at=T0, ends_at=T0 + timedelta(days=2))
    ran = PlacementFactory(contract=contract, valid_from=T0)
    PlacementFactory(contract=contract, valid_from=T0 + timedelta(days=1))
    with time_machine.travel(T0 + timedelta(hours=6), tick=False):
        terminate_contract(contract=contract, reason="customer defaulted")
    ran.refresh_from_db()
    assert ran.valid_to == T0 + timedelta(hours=6)
    assert list(Placement.objects.filter(contract=contract)) == [ran]


def test_reject_leaves_requested_only():
    contract = ContractFactory()
    reject_contract(contract=contract)
    assert contract.status == ContractStatus.REJECTED
