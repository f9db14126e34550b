"""Claude as an advisor: the real SDK over HTTP to a fake Messages API on 127.0.0.1, on a seeded fleet.

Whatever Claude answers, the engine's plan stays in force unless a proposal is feasible and not worse; every
other outcome is recorded with its reason.
"""

import json
import time
import warnings
from datetime import timedelta
from io import StringIO

import numpy as np
import pytest
import time_machine
from django.core.management import call_command

from optimizer import engine
from optimizer.advisor import CannotRebuild, advise_run, judge_adjustments, rebuild_problem
from optimizer.choices import AdvisorStatus, RunTrigger, Strategy
from optimizer.clients.claude import Adjustment
from optimizer.models import Allocation, OptimizationRun
from optimizer.services import optimize_now
from optimizer.tasks import advise_optimization
from sites.models import Site, SiteInventory
from sites.services import refresh_market_prices, refresh_weather
from tests.factories import T0
from tests.fakeserver import FakeServer, fake_server_fixture  # noqa: F401  (registers "fake_server")

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(hours=12, minutes=2)
MODEL = "claude-sonnet-4-6"  # not on the SDK's deprecated list
KEY = "sk-ant-test-key"
PATH = "/v1/messages"


@pytest.fixture
def world():
    """The seeded fleet with fresh prices and weather."""
    call_command("seed_sites", stdout=StringIO())
    with time_machine.travel(NOW, tick=False):
        refresh_market_prices(at=NOW)
        refresh_weather(at=NOW)


def applied_run(strategy, at=NOW):
    with time_machine.travel(at, tick=False):
        run = optimize_now(trigger=RunTrigger.MANUAL, strategy=strategy)
    assert run.is_applied, run.error
    return run


@pytest.fixture
def run(world):
    """An applied run of the engine (MILP): its plan is optimal, so no adjustment can beat it."""
    return applied_run(Strategy.LP)


@pytest.fixture
def quick_run(world):
    """An applied greedy run: solved in milliseconds, for cases where the plan's quality does not matter."""
    return applied_run(Strategy.GREEDY)


@pytest.fixture
def claude(settings, fake_server):
    """Settings pointing the SDK at the fake server, with a key and a short timeout."""
    settings.ANTHROPIC_API_KEY = KEY
    settings.ANTHROPIC_BASE_URL = fake_server.url
    settings.ANTHROPIC_MODEL = MODEL
    settings.ANTHROPIC_TIMEOUT_S = 5.0
    return fake_server


def message(*blocks, stop_reason=None):
    stop = stop_reason or ("tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn")
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": list(blocks),
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 900, "output_tokens": 150},
    }


def text(words="Texas runs air miners on cheap power; inference sits where demand is."):
    return {"type": "text", "text": words}


def proposal(*adjustments, name="propose_adjustments"):
    items = [{"site": s, "hardware": h, "units_delta": d, "reason": "test"} for s, h, d in adjustments]
    return {"type": "tool_use", "id": "toolu_01", "name": name, "input": {"adjustments": items}}


def advise(run_id):
    with time_machine.travel(NOW + timedelta(seconds=30), tick=False):
        return advise_run(run_id=run_id)


def fleet_state(run):
    """What runs now, as the sites and the run's allocation rows say."""
    running = sorted(SiteInventory.objects.values_list("site__code", "hardware_model__code", "units_running"))
    rows = sorted(Allocation.objects.filter(run=run).values_list("site__code", "hardware_model__code", "units_running"))
    return running, rows


def largest_allocation(run, **filters):
    rows = Allocation.objects.filter(run=run, **filters).select_related("site", "hardware_model")
    return rows.order_by("-units_running", "site__code", "hardware_model__code").first()


def top_inference_allocation(run):
    """The engine's biggest inference placement: each unit there earns hundreds of USD an hour."""
    return largest_allocation(run, hardware_model__kind="inference")


def over_power_pair(run):
    """(site, hardware, idle units) where starting the idle units stays within inventory but breaks site power."""
    for site in Site.objects.order_by("code"):
        pue = run.inputs["sites"][site.code]["pue"]
        used_kw = sum(float(a.it_power_kw) for a in Allocation.objects.filter(run=run, site=site))
        for inventory in SiteInventory.objects.filter(site=site).select_related("hardware_model"):
            idle = inventory.units_available - inventory.units_running
            added_kw = idle * float(inventory.hardware_model.power_kw_per_unit)
            if idle > 0 and (used_kw + added_kw) * pue > float(site.power_capacity_kw) * 1.05:
                return site.code, inventory.hardware_model.code, idle
    raise AssertionError("the seeded fleet has no site that idle units could overload")


def test_zero_delta_proposal_is_accepted_at_equal_profit(run, claude):
    row = top_inference_allocation(run)
    claude.add("POST", PATH, json=message(text(), proposal((row.site.code, row.hardware_model.code, 0))))
    before = fleet_state(run)

    run = advise(run.pk)

    assert run.advisor_status == AdvisorStatus.ACCEPTED, run.advisor_verdict
    assert run.advisor_verdict.startswith("Accepted and applied: feasible, and the adjusted plan earns the same")
    assert run.advisor_proposal["difference_usd"] == 0 and run.advisor_proposal["applied"] is True
    assert run.advisor_narrative.startswith("Texas runs air miners") and run.advisor_model == MODEL
    assert run.advised_at is not None
    assert fleet_state(run) == before


def test_proposal_that_earns_more_is_applied_to_sites_and_allocation(run, claude):
    # The applied allocation is two units short of the engine's optimum, as if an operator had stopped them.
    row = top_inference_allocation(run)
    optimum = row.units_running
    Allocation.objects.filter(pk=row.pk).update(units_running=optimum - 2)
    inventory = SiteInventory.objects.get(site=row.site, hardware_model=row.hardware_model)
    SiteInventory.objects.filter(pk=inventory.pk).update(units_running=inventory.units_running - 2)
    claude.add("POST", PATH, json=message(text(), proposal((row.site.code, row.hardware_model.code, 2))))

    run = advise(run.pk)

    assert run.advisor_status == AdvisorStatus.ACCEPTED, run.advisor_verdict
    assert "earns $" in run.advisor_verdict and "more over the 6 h horizon" in run.advisor_verdict
    assert run.advisor_proposal["difference_usd"] > 0
    inventory.refresh_from_db()
    row.refresh_from_db()
    assert inventory.units_running == row.units_running == optimum
    assert row.it_power_kw == row.units_running * row.hardware_model.power_kw_per_unit
    assert row.facility_power_kw >= row.it_power_kw and row.revenue_usd_per_h > 0


def test_over_power_proposal_is_rejected_naming_the_constraint(quick_run, claude):
    site, hardware, idle = over_power_pair(quick_run)
    claude.add("POST", PATH, json=message(text(), proposal((site, hardware, idle))))
    before = fleet_state(quick_run)

    run = advise(quick_run.pk)

    assert run.advisor_status == AdvisorStatus.REJECTED
    assert run.advisor_verdict.startswith("Rejected: infeasible")
    assert f"power exceeded: {site} period 0" in run.advisor_verdict
    assert "inventory" not in run.advisor_verdict
    adjustment = {"site": site, "hardware": hardware, "units_delta": idle, "reason": "test"}
    assert run.advisor_proposal["adjustments"] == [adjustment]
    assert run.advisor_proposal["applied"] is False
    assert fleet_state(run) == before


def test_over_inventory_proposal_is_rejected_naming_the_constraint(quick_run, claude):
    row = largest_allocation(quick_run)
    available = SiteInventory.objects.get(site=row.site, hardware_model=row.hardware_model).units_available
    excess = available - row.units_running + 1
    claude.add("POST", PATH, json=message(text(), proposal((row.site.code, row.hardware_model.code, excess))))
    before = fleet_state(quick_run)

    run = advise(quick_run.pk)

    assert run.advisor_status == AdvisorStatus.REJECTED
    assert f"inventory exceeded: {row.site.code} {row.hardware_model.code} period 0" in run.advisor_verdict
    assert f"({available + 1:g} > {available:g})" in run.advisor_verdict
    assert fleet_state(run) == before


def test_worse_proposal_is_rejected_with_the_profit_difference(run, claude):
    row = top_inference_allocation(run)
    claude.add("POST", PATH, json=message(text(), proposal((row.site.code, row.hardware_model.code, -5))))
    before = fleet_state(run)

    run = advise(run.pk)

    assert run.advisor_status == AdvisorStatus.REJECTED
    difference = run.advisor_proposal["difference_usd"]
    assert difference < 0
    assert run.advisor_proposal["adjusted_profit_usd"] == pytest.approx(
        run.advisor_proposal["engine_profit_usd"] + difference, abs=1e-3
    )
    assert f"earns ${-difference:,.2f} less over the 6 h horizon than the engine's plan" in run.advisor_verdict
    assert fleet_state(run) == before


def test_narrative_without_tool_call_is_recorded_as_no_proposal(quick_run, claude):
    claude.add("POST", PATH, json=message(text("The plan is sound: nothing to change.")))

    run = advise(quick_run.pk)

    assert run.advisor_status == AdvisorStatus.NO_PROPOSAL
    assert run.advisor_narrative == "The plan is sound: nothing to change."
    assert "engine's plan stands" in run.advisor_verdict


def test_empty_proposal_is_recorded_as_no_proposal(quick_run, claude):
    claude.add("POST", PATH, json=message(text(), proposal()))

    assert advise(quick_run.pk).advisor_status == AdvisorStatus.NO_PROPOSAL


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ({"body": "<html>Bad gateway</html>", "content_type": "text/html"}, "not a message"),
        ({"body": "{not json", "content_type": "application/json"}, "not a message"),
        ({"json": {"unexpected": True}}, "not a message with content"),
        ({"json": message()}, "neither text nor a tool call"),
        ({"json": message(text(), stop_reason="tool_use")}, "stopped for a tool call but contains none"),
        ({"json": message(text(), proposal(name="delete_everything"))}, "unknown tool 'delete_everything'"),
        ({"json": message(text(), proposal(("site_0_atlantis", "miner_air", 1)))}, "unknown site 'site_0_atlantis'"),
    ],
    ids=["html", "broken-json", "not-a-message", "empty", "missing-tool-call", "unknown-tool", "unknown-site"],
)
def test_unusable_reply_leaves_the_plan_and_says_why(quick_run, claude, reply, reason):
    claude.add("POST", PATH, **reply)
    before = fleet_state(quick_run)

    run = advise(quick_run.pk)

    assert run.advisor_status == AdvisorStatus.UNAVAILABLE
    assert run.advisor_verdict.startswith("Claude's reply was unusable:")
    assert reason in run.advisor_verdict and "The engine's plan stays in force." in run.advisor_verdict
    assert fleet_state(run) == before


def test_tool_input_with_a_fractional_delta_is_invalid_and_keeps_the_narrative(quick_run, claude):
    block = proposal(("site_5_texas", "miner_air", 1))
    block["input"]["adjustments"][0]["units_delta"] = 1.5
    claude.add("POST", PATH, json=message(text("Start a few more miners."), block))

    run = advise(quick_run.pk)

    assert run.advisor_status == AdvisorStatus.UNAVAILABLE
    assert "units_delta must be an integer" in run.advisor_verdict
    assert run.advisor_narrative == "Start a few more miners."


def test_overloaded_api_leaves_the_plan_in_force(quick_run, claude):
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    claude.add("POST", PATH, status=529, json=error)
    before = fleet_state(quick_run)

    run = advise(quick_run.pk)

    assert run.advisor_status == AdvisorStatus.UNAVAILABLE
    assert "Claude is overloaded (HTTP 529): Overloaded" in run.advisor_verdict
    assert fleet_state(run) == before
    assert len(claude.requests_to("POST", PATH)) == 1  # no SDK retries: the task retries, later


def test_server_error_leaves_the_plan_in_force(quick_run, claude):
    claude.add("POST", PATH, status=500, json={"type": "error", "error": {"type": "api_error", "message": "boom"}})

    run = advise(quick_run.pk)

    assert run.advisor_status == AdvisorStatus.UNAVAILABLE
    assert "the Claude API failed (HTTP 500): boom" in run.advisor_verdict


def test_refused_request_is_unavailable(quick_run, claude):
    error = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    claude.add("POST", PATH, status=401, json=error)

    run = advise(quick_run.pk)

    assert run.advisor_status == AdvisorStatus.UNAVAILABLE
    assert "refused the request (HTTP 401): invalid x-api-key" in run.advisor_verdict


def test_timeout_is_unavailable_and_quick(quick_run, claude, settings):
    settings.ANTHROPIC_TIMEOUT_S = 0.3
    claude.add("POST", PATH, json=message(text()), delay=10)

    started = time.perf_counter()
    run = advise(quick_run.pk)

    assert time.perf_counter() - started < 3
    assert run.advisor_status == AdvisorStatus.UNAVAILABLE
    assert "no answer within 0.3 s" in run.advisor_verdict


def test_unreachable_api_is_unavailable(quick_run, claude, settings):
    with FakeServer() as closed:
        settings.ANTHROPIC_BASE_URL = closed.url
    # The server is stopped: its port refuses connections.

    run = advise(quick_run.pk)

    assert run.advisor_status == AdvisorStatus.UNAVAILABLE
    assert "cannot reach the Claude API" in run.advisor_verdict


def test_no_api_key_sends_nothing(quick_run, claude, settings):
    settings.ANTHROPIC_API_KEY = ""
    before = fleet_state(quick_run)

    run = advise(quick_run.pk)

    assert run.advisor_status == AdvisorStatus.UNAVAILABLE
    assert "no ANTHROPIC_API_KEY is configured" in run.advisor_verdict
    assert claude.requests == []
    assert fleet_state(run) == before


def test_request_carries_the_key_model_tool_schema_and_a_compact_prompt(run, claude):
    claude.add("POST", PATH, json=message(text()))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        advise(run.pk)

    (request,) = claude.requests_to("POST", PATH)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = request.json()
    assert body["model"] == MODEL and body["max_tokens"] > 0
    (tool,) = body["tools"]
    assert tool["name"] == "propose_adjustments"
    item = tool["input_schema"]["properties"]["adjustments"]["items"]
    assert item["required"] == ["site", "hardware", "units_delta", "reason"]
    assert item["properties"]["units_delta"]["type"] == "integer"
    assert set(item["properties"]["site"]["enum"]) == set(Site.objects.values_list("code", flat=True))
    assert body["tool_choice"]["type"] == "auto"
    prompt = body["messages"][0]["content"]
    for site in Site.objects.all():
        assert f"- {site.code}" in prompt
    assert run.details["binding"][0]["text"] in prompt
    assert "{" not in prompt  # a summary in words, not a JSON dump
    characters = len(body["system"]) + len(prompt) + len(json.dumps(body["tools"]))
    assert characters / 4 < 1500, characters
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning) and "model" in str(w.message)]


def test_advice_on_a_replaced_plan_is_not_applied(quick_run, claude):
    newer = applied_run(Strategy.GREEDY, at=NOW + timedelta(seconds=10))
    row = largest_allocation(quick_run)
    claude.add("POST", PATH, json=message(text(), proposal((row.site.code, row.hardware_model.code, 0))))
    before = fleet_state(newer)

    run = advise(quick_run.pk)

    assert run.advisor_status == AdvisorStatus.REJECTED
    assert run.advisor_verdict.startswith("Not applied: feasible")
    assert f"run {newer.pk} has replaced this run's plan" in run.advisor_verdict
    assert fleet_state(newer) == before


def test_task_retries_an_overload_once_then_records_it(quick_run, claude):
    claude.add("POST", PATH, status=529, json={"type": "error", "error": {"type": "overloaded_error", "message": "x"}})

    result = advise_optimization.apply(args=[quick_run.pk])

    assert result.get() == {
        "run": quick_run.pk,
        "advisor_status": AdvisorStatus.UNAVAILABLE,
        "verdict": OptimizationRun.objects.get(pk=quick_run.pk).advisor_verdict[:200],
    }
    assert len(claude.requests_to("POST", PATH)) == 2  # the first attempt and one retry, no more


def test_task_succeeds_on_retry_after_an_overload(quick_run, claude):
    claude.add("POST", PATH, status=529, json={"type": "error", "error": {"type": "overloaded_error", "message": "x"}})
    claude.add("POST", PATH, json=message(text("All good.")))

    assert advise_optimization.apply(args=[quick_run.pk]).get()["advisor_status"] == AdvisorStatus.NO_PROPOSAL
    assert OptimizationRun.objects.get(pk=quick_run.pk).advisor_narrative == "All good."


def test_task_does_not_retry_without_a_key(quick_run, claude, settings):
    settings.ANTHROPIC_API_KEY = ""

    assert advise_optimization.apply(args=[quick_run.pk]).get()["advisor_status"] == AdvisorStatus.UNAVAILABLE
    assert claude.requests == []


def test_task_twice_asks_claude_once(quick_run, claude):
    claude.add("POST", PATH, json=message(text()))

    first = advise_optimization.apply(args=[quick_run.pk]).get()
    second = advise_optimization.apply(args=[quick_run.pk]).get()

    assert first["advisor_status"] == second["advisor_status"] == AdvisorStatus.NO_PROPOSAL
    assert len(claude.requests) == 1


def test_task_logs_a_missing_run(db, claude):
    assert advise_optimization.apply(args=[999_999]).get() == {"run": 999_999, "advisor_status": "missing"}
    assert claude.requests == []


def test_a_run_without_an_applied_plan_is_not_advised(quick_run, claude):
    OptimizationRun.objects.filter(pk=quick_run.pk).update(is_applied=False)

    run = advise(quick_run.pk)

    assert run.advisor_status == AdvisorStatus.NOT_REQUESTED
    assert claude.requests == []


def test_a_pending_claim_is_taken_over_only_once_abandoned(quick_run, claude):
    claude.add("POST", PATH, json=message(text("Fine.")))
    OptimizationRun.objects.filter(pk=quick_run.pk).update(advisor_status=AdvisorStatus.PENDING, advised_at=NOW)

    assert advise(quick_run.pk).advisor_status == AdvisorStatus.PENDING  # another worker is on it
    assert claude.requests == []
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        run = advise_run(run_id=quick_run.pk)  # that worker died long ago

    assert run.advisor_status == AdvisorStatus.NO_PROPOSAL and run.advisor_narrative == "Fine."


# The judge alone, on a hand-made problem: two sites, one miner earning $0.10/h per unit. At site "a" energy
# costs exactly that much (a unit there neither earns nor loses), at site "b" half (each unit earns $0.05/h,
# and b's 10 kW of power is the limit).


def test_rebuilt_problem_plans_on_the_forecast_the_run_stored(quick_run):
    periods = quick_run.inputs["forecast"]["periods"]
    n = len(periods["hashprice_usd_per_ph_day"])
    ramp = np.arange(n, dtype=float)  # a forecast today's inputs would not give: every series moves each period
    for code, values in periods["energy_price_usd_per_mwh"].items():
        periods["energy_price_usd_per_mwh"][code] = [values[0], *(values[0] + 40 + 10 * ramp[1:])]
        periods["pue"][code] = [periods["pue"][code][0], *(1.5 + 0.01 * ramp[1:])]
    periods["hashprice_usd_per_ph_day"] = [periods["hashprice_usd_per_ph_day"][0], *(30 - ramp[1:])]
    periods["inference_price_usd_per_mtok"] = [periods["inference_price_usd_per_mtok"][0], *(3 + ramp[1:])]
    for region, values in periods["inference_demand_mtok_per_h"].items():
        periods["inference_demand_mtok_per_h"][region] = [values[0], *(100 * ramp[1:])]
    quick_run.save(update_fields=["inputs"])

    problem = rebuild_problem(quick_run).problem

    codes, market = problem.site_codes, problem.market
    stored = quick_run.inputs
    assert problem.shape[2] == n > 1
    assert np.allclose(problem.energy_price_usd_per_mwh, [periods["energy_price_usd_per_mwh"][c] for c in codes])
    assert np.allclose(problem.pue[:, 1:], [periods["pue"][c][1:] for c in codes])
    assert np.allclose(problem.pue[:, 0], [stored["sites"][c]["pue"] for c in codes], atol=1e-4)
    assert np.allclose(market.hashprice_usd_per_ph_day, periods["hashprice_usd_per_ph_day"])
    assert np.allclose(market.inference_price_usd_per_mtok, periods["inference_price_usd_per_mtok"])
    for region, values in periods["inference_demand_mtok_per_h"].items():
        assert np.allclose(market.inference_demand_mtok_per_h[region][1:], values[1:])


def test_rebuilt_problem_of_a_run_stored_without_a_forecast_holds_its_first_period(quick_run):
    del quick_run.inputs["forecast"]
    quick_run.save(update_fields=["inputs"])

    problem = rebuild_problem(quick_run).problem

    prices = [quick_run.inputs["sites"][code]["energy_price_usd_per_mwh"] for code in problem.site_codes]
    assert np.allclose(problem.energy_price_usd_per_mwh, np.array(prices)[:, None])
    assert np.allclose(problem.pue, problem.pue[:, :1])
    hashprice = quick_run.inputs["market"]["hashprice_usd_per_ph_day"]
    assert np.allclose(problem.market.hashprice_usd_per_ph_day, hashprice)


def test_a_stored_forecast_for_another_horizon_cannot_be_rebuilt(quick_run, claude):
    periods = quick_run.inputs["forecast"]["periods"]
    periods["hashprice_usd_per_ph_day"] = periods["hashprice_usd_per_ph_day"][:-1]
    quick_run.save(update_fields=["inputs"])

    with pytest.raises(CannotRebuild, match="the planning horizon changed since the run"):
        rebuild_problem(quick_run)
    run = advise(quick_run.pk)

    assert run.advisor_status == AdvisorStatus.UNAVAILABLE
    assert "the planning horizon changed since the run" in run.advisor_verdict
    assert not claude.requests


def two_site_problem():
    return engine.Problem(
        sites=(engine.Site("a", 10.0, "europe"), engine.Site("b", 10.0, "europe")),
        hardware=(engine.HardwareModel("rig", "miner", power_kw=1.0, hashrate_th_s=100.0),),
        inventory_units=[[20.0], [20.0]],
        period_hours=[1.0, 1.0],
        pue=np.ones((2, 2)),
        energy_price_usd_per_mwh=[[100.0, 100.0], [50.0, 50.0]],
        market=engine.Market(hashprice_usd_per_ph_day=np.full(2, 24.0), inference_price_usd_per_mtok=np.zeros(2)),
        settings=engine.Settings(integer=True),
    )


def test_judge_accepts_a_change_that_earns_as_much_as_the_optimal_plan():
    problem = two_site_problem()
    plan = engine.solve(problem).units
    delta = 1 if plan[0, 0, 0] < 10 else -1  # a's units earn nothing either way

    judgement = judge_adjustments(problem, plan, [Adjustment("a", "rig", delta, "indifferent")])

    assert judgement.accepted, judgement.verdict
    assert judgement.verdict.startswith("feasible, and the adjusted plan earns the same over the 2 h horizon")
    assert judgement.units_now[0, 0] == plan[0, 0, 0] + delta and judgement.units_now[1, 0] == plan[1, 0, 0]


def test_judge_names_the_power_limit_a_change_breaks():
    problem = two_site_problem()
    plan = engine.solve(problem).units

    judgement = judge_adjustments(problem, plan, [Adjustment("b", "rig", 1, "more")])

    assert not judgement.accepted
    assert "power exceeded: b period 0 (11.0 kW > 10.0 kW)" in judgement.verdict
    assert judgement.record["violations"] == ["power exceeded: b period 0 (11.0 kW > 10.0 kW)"]


def test_judge_prices_a_worse_change():
    problem = two_site_problem()
    plan = engine.solve(problem).units

    judgement = judge_adjustments(problem, plan, [Adjustment("b", "rig", -2, "fewer")])

    assert not judgement.accepted
    assert "it earns $0.10 less over the 2 h horizon than the engine's plan" in judgement.verdict
    assert judgement.record["difference_usd"] == pytest.approx(-0.10)


def book_of(n: int) -> list[dict]:
    """``n`` contracts as a run's details list them, over four tiers and ten sites, every seventh short."""
    tiers = ("premium", "standard", "flexible", "spot")
    return [
        {
            "contract": i,
            "tier": tiers[i % 4],
            "capacity_kw": 2.0 + i % 19,
            "placements_kw": {f"site_{i % 10}": 2.0 + i % 19},
            "unserved_kw": 1.0 if i % 7 == 0 else 0.0,
            "n_minus_1_shortfall_kw": 0.0,
        }
        for i in range(n)
    ]


def test_the_prompt_does_not_grow_with_the_book(run):
    # The book is told per tier (placed kW per site) plus the five contracts furthest short: 3,000 contracts make
    # the same size of prompt as 40.
    from optimizer.advisor import summarize_run

    rebuilt = rebuild_problem(run)
    sizes = {}
    for n in (40, 3000):
        run.details = {**run.details, "commitments": book_of(n)}
        sizes[n] = len(summarize_run(run, rebuilt))
    assert sizes[3000] <= sizes[40] + 100
    prompt = summarize_run(run, rebuilt)
    assert "- premium: 750 contracts" in prompt
    assert prompt.count("- short: ") == 5
    assert "- and 424 more contracts short." in prompt  # 429 of 3,000 are short (every seventh)
