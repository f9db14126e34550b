"""expire_contracts completes due contracts exactly once."""

from datetime import timedelta

import pytest
import time_machine

from sla.choices import ContractStatus
from sla.tasks import expire_contracts
from tests.factories import T0, ContractFactory, PlacementFactory

pytestmark = pytest.mark.django_db


def test_expire_contracts_completes_ended_contracts_once():
    ended = ContractFactory(status=ContractStatus.ACTIVE, starts_at=T0, ends_at=T0 + timedelta(hours=1))
    placement = PlacementFactory(contract=ended, valid_from=T0)
    running = ContractFactory(status=ContractStatus.ACTIVE, starts_at=T0, ends_at=T0 + timedelta(days=3))
    requested = ContractFactory(starts_at=T0, ends_at=T0 + timedelta(hours=1))
    with time_machine.travel(T0 + timedelta(hours=2), tick=False):
        assert expire_contracts.apply().get() == {"completed": 1}
        assert expire_contracts.apply().get() == {"completed": 0}
    ended.refresh_from_db(), running.refresh_from_db(), requested.refresh_from_db(), placement.refresh_from_db()
    assert ended.status == ContractStatus.COMPLETED
    assert placement.valid_to == T0 + timedelta(hours=2)
    assert running.status == ContractStatus.ACTIVE
    assert requested.status == ContractStatus.REQUESTED
