"""Client of the Claude Messages API (``anthropic`` SDK 2.x): the only module of energyarb that talks to it.

One call, ``ask_for_advice``: a system prompt and a compact summary go out with one tool, ``propose_adjustments``
(``{adjustments: [{site, hardware, units_delta, reason}]}``, ``tool_choice`` auto, at most one call); what comes
back is an ``AdvisorReply`` (the narrative = the reply's text blocks; the proposal = the tool call's adjustments,
or ``None`` when Claude answered in words only), or one of two typed errors:

- ``AdvisorUnavailable``: no API key (raised before any HTTP request), a timeout, a connection failure, HTTP 5xx,
  529 overloaded or 429 (``retryable``), or any other refusal of the request such as 401 or 404 for an unknown
  model (not retryable: a configuration problem).
- ``AdvisorReplyInvalid``: the API answered 200 with something unusable: a body that is not a message, a message
  with neither text nor tool call, a tool call to another tool, or tool input that does not match the schema.
  Retrying would not help. It keeps whatever narrative text came with the reply.

Configuration (``energyarb/settings.py``): ``ANTHROPIC_API_KEY`` (the SDK sends it as ``Authorization: Bearer``),
``ANTHROPIC_BASE_URL`` (empty = the SDK's default, the public API), ``ANTHROPIC_MODEL`` (a setting because the
SDK warns about deprecated model names) and ``ANTHROPIC_TIMEOUT_S`` (per attempt).

Retries: the SDK's own retries are off (``max_retries=0``). The SDK would sleep in the worker for as long as a
``retry-after`` header asks, without a cap; instead the Celery task retries once, later, on a retryable
``AdvisorUnavailable`` (``optimizer.tasks.advise_optimization``). So one advice costs at most two HTTP requests
and one request blocks a worker for at most ``ANTHROPIC_TIMEOUT_S``.

The SDK is imported when a request is made, not with this module: it takes about two seconds to import, and
``optimizer.tasks`` (imported by every web process) needs only the error classes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    import anthropic
    from anthropic.types import ToolParam

TOOL_NAME = "propose_adjustments"
MAX_RETRIES = 0  # SDK retries; the Celery task retries once instead (see the module docstring)
MAX_TOKENS = 1024  # a narrative of ~150 words plus a tool call fits in a third of this
MAX_ADJUSTMENTS = 20
MAX_UNITS_DELTA = 100_000  # far beyond any site's inventory: a larger number is a malformed reply, not a plan
MAX_REASON_CHARS = 300
MAX_NARRATIVE_CHARS = 4000


@dataclass(frozen=True)
class Adjustment:
    """Run ``units_delta`` more (negative: fewer) units of ``hardware`` at ``site`` than the engine's plan."""

    site: str
    hardware: str
    units_delta: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"site": self.site, "hardware": self.hardware, "units_delta": self.units_delta, "reason": self.reason}


@dataclass(frozen=True)
class AdvisorReply:
    """What Claude said: a narrative, and adjustments when it called the tool (``None``: narrative only)."""

    narrative: str
    proposal: list[Adjustment] | None
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None


class AdvisorError(Exception):
    """Base class: no usable advice; the engine's plan stays in force."""

    retryable = False

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class AdvisorUnavailable(AdvisorError):
    """No key, timeout, connection failure, HTTP 5xx / 529 / 429 (``retryable``), or the request was refused."""

    def __init__(self, reason: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(reason, status=status)
        self.retryable = retryable


class AdvisorReplyInvalid(AdvisorError):
    """The API answered, but not with a message we can use (garbage, no content, schema mismatch)."""

    def __init__(self, reason: str, *, narrative: str = "") -> None:
        super().__init__(reason)
        self.narrative = narrative


def is_configured() -> bool:
    """True when an API key is set (nothing else is checked without a request)."""
    return bool(settings.ANTHROPIC_API_KEY)


def request_seconds_at_most() -> float:
    """Longest time one ``ask_for_advice`` call may block: every attempt up to the timeout (no retry sleeps)."""
    return (MAX_RETRIES + 1) * float(settings.ANTHROPIC_TIMEOUT_S)


def proposal_tool(site_codes: Sequence[str], hardware_codes: Sequence[str]) -> ToolParam:
    """The ``propose_adjustments`` tool: site and hardware codes as enums, integer deltas, a reason each."""
    return {
        "name": TOOL_NAME,
        "description": (
            "Propose changes to the units running now, as integer deltas against the engine's plan. Each is "
            "checked against every constraint and re-scored by the engine; applied only if feasible and not worse."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "adjustments": {
                    "type": "array",
                    "maxItems": MAX_ADJUSTMENTS,
                    "items": {
                        "type": "object",
                        "properties": {
                            "site": {"type": "string", "enum": list(site_codes)},
                            "hardware": {"type": "string", "enum": list(hardware_codes)},
                            "units_delta": {"type": "integer", "description": "more (+) or fewer (-) units"},
                            "reason": {"type": "string", "maxLength": MAX_REASON_CHARS},
                        },
                        "required": ["site", "hardware", "units_delta", "reason"],
                        "additionalProperties": False,
                    },
                }
            },
            "required": ["adjustments"],
            "additionalProperties": False,
        },
    }


def build_client() -> anthropic.Anthropic:
    """An SDK client from settings: explicit key (environment credentials are not consulted), base URL, timeout."""
    import anthropic

    if not is_configured():
        raise AdvisorUnavailable("no ANTHROPIC_API_KEY is configured")
    return anthropic.Anthropic(
        api_key=settings.ANTHROPIC_API_KEY,
        base_url=settings.ANTHROPIC_BASE_URL or None,
        timeout=float(settings.ANTHROPIC_TIMEOUT_S),
        max_retries=MAX_RETRIES,
    )


def ask_for_advice(
    *, system: str, prompt: str, site_codes: Sequence[str], hardware_codes: Sequence[str]
) -> AdvisorReply:
    """Send ``prompt`` with the proposal tool and return Claude's narrative and proposal.

    Raises ``AdvisorUnavailable`` (before any request when no key is set) or ``AdvisorReplyInvalid``.
    """
    if not is_configured():
        raise AdvisorUnavailable("no ANTHROPIC_API_KEY is configured")
    import anthropic

    model = settings.ANTHROPIC_MODEL
    client = build_client()
    try:
        message = client.messages.create(
            model=model,
            max_tokens=MAX_TOKENS,
            system=system,
            messages=[{"role": "user", "content": prompt}],
            tools=[proposal_tool(site_codes, hardware_codes)],
            tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        )
    except anthropic.APITimeoutError as exc:
        raise AdvisorUnavailable(f"no answer within {settings.ANTHROPIC_TIMEOUT_S:g} s", retryable=True) from exc
    except anthropic.APIConnectionError as exc:
        raise AdvisorUnavailable(f"cannot reach the Claude API: {exc}", retryable=True) from exc
    except anthropic.APIStatusError as exc:
        raise _status_error(exc) from exc
    except (anthropic.APIResponseValidationError, json.JSONDecodeError) as exc:  # the SDK's json.loads of the body
        raise AdvisorReplyInvalid(f"the reply is not a message: {type(exc).__name__}: {exc}") from exc
    finally:
        client.close()
    return parse_message(message, site_codes=site_codes, hardware_codes=hardware_codes, model=model)


def _status_error(exc: anthropic.APIStatusError) -> AdvisorUnavailable:
    status = exc.status_code
    detail = exc.api_message or exc.message
    if status == 529:
        return AdvisorUnavailable(f"Claude is overloaded (HTTP 529): {detail}", status=status, retryable=True)
    if status >= 500 or status == 429:
        return AdvisorUnavailable(f"the Claude API failed (HTTP {status}): {detail}", status=status, retryable=True)
    return AdvisorUnavailable(f"the Claude API refused the request (HTTP {status}): {detail}", status=status)


def parse_message(
    message: object, *, site_codes: Sequence[str], hardware_codes: Sequence[str], model: str
) -> AdvisorReply:
    """Check a reply block by block; the SDK builds a ``Message`` from almost any JSON, so nothing is trusted.

    Text blocks form the narrative; one ``propose_adjustments`` call forms the proposal. Other block types
    (thinking, future ones) are ignored.
    """
    content = getattr(message, "content", None)
    if not isinstance(content, list):
        raise AdvisorReplyInvalid(f"the reply is not a message with content (got {type(message).__name__})")
    texts: list[str] = []
    calls: list[object] = []
    for block in content:
        kind = getattr(block, "type", None)
        if kind == "text":
            text = getattr(block, "text", None)
            if not isinstance(text, str):
                raise AdvisorReplyInvalid("a text block has no text")
            texts.append(text.strip())
        elif kind == "tool_use":
            calls.append(block)
    narrative = "\n\n".join(t for t in texts if t)[:MAX_NARRATIVE_CHARS]
    if len(calls) > 1:
        raise AdvisorReplyInvalid(f"{len(calls)} tool calls where at most one is allowed", narrative=narrative)
    proposal = None
    if calls:
        name = getattr(calls[0], "name", None)
        if name != TOOL_NAME:
            raise AdvisorReplyInvalid(f"a call to an unknown tool {name!r}", narrative=narrative)
        proposal = _adjustments(getattr(calls[0], "input", None), site_codes, hardware_codes, narrative)
    elif getattr(message, "stop_reason", None) == "tool_use":
        raise AdvisorReplyInvalid("the reply stopped for a tool call but contains none", narrative=narrative)
    if not narrative and proposal is None:
        raise AdvisorReplyInvalid("the reply has neither text nor a tool call")
    usage = getattr(message, "usage", None)
    reply_model = getattr(message, "model", None)
    return AdvisorReply(
        narrative=narrative,
        proposal=proposal,
        model=reply_model if isinstance(reply_model, str) and reply_model else model,
        input_tokens=_int_or_none(getattr(usage, "input_tokens", None)),
        output_tokens=_int_or_none(getattr(usage, "output_tokens", None)),
    )


def _adjustments(
    tool_input: object, site_codes: Sequence[str], hardware_codes: Sequence[str], narrative: str
) -> list[Adjustment]:
    """The tool input checked against the schema we sent (the API does not guarantee it)."""

    def invalid(why: str) -> AdvisorReplyInvalid:
        return AdvisorReplyInvalid(f"{TOOL_NAME} input does not match its schema: {why}", narrative=narrative)

    if not isinstance(tool_input, Mapping) or set(tool_input) != {"adjustments"}:
        raise invalid("expected an object with exactly the key 'adjustments'")
    items = tool_input["adjustments"]
    if not isinstance(items, list) or len(items) > MAX_ADJUSTMENTS:
        raise invalid(f"'adjustments' must be a list of at most {MAX_ADJUSTMENTS} items")
    required = {"site", "hardware", "units_delta", "reason"}
    adjustments = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or set(item) != required:
            raise invalid(f"item {i} must have exactly the keys {sorted(required)}")
        site, hardware, delta, reason = item["site"], item["hardware"], item["units_delta"], item["reason"]
        if site not in site_codes:
            raise invalid(f"item {i}: unknown site {site!r}")
        if hardware not in hardware_codes:
            raise invalid(f"item {i}: unknown hardware {hardware!r}")
        if not isinstance(delta, int) or isinstance(delta, bool) or abs(delta) > MAX_UNITS_DELTA:
            raise invalid(f"item {i}: units_delta must be an integer within +/-{MAX_UNITS_DELTA:,}, got {delta!r}")
        if not isinstance(reason, str):
            raise invalid(f"item {i}: reason must be a string")
        adjustments.append(Adjustment(site, hardware, delta, reason.strip()[:MAX_REASON_CHARS]))
    return adjustments


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
