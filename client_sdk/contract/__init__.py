"""A conformance suite for any server of the Intraday live-updates protocol, version 1.

It connects to a server that is already running, as a client from outside
would, and checks every rule of the protocol section by section: transport and
the plain-WebSocket bridge, identifiers, authentication, subscriptions and the
delivery rule, envelopes and the payloads of all seventeen events, acks,
``client:ping``, errors, limits and the management API. Each check names its
section, and a failure says what was sent and what came back.

Three ways to run it:

* the command line: ``intraday-live contract --url http://127.0.0.1:5000 ...``
  (:func:`client_sdk.contract.cli.main`);
* pytest: ``pytest -p client_sdk.contract.pytest_plugin --intraday-url ...``,
  one test item per check;
* code: ``report = await run_contract(ContractConfig(url=...))``.

It is safe against a production server by default: it uses only the
organizations it is given, with generated ``contract-...`` users, queues and
departments; every wait and burst is bounded; it unsubscribes and disconnects
what it opened; and it pushes limits only with ``destructive=True``.
"""

from ._context import CheckContext, ServerProfile, ServerUnreachableError
from .checks import all_checks
from .config import ContractConfig
from .model import (
    Check,
    CheckFailure,
    CheckResult,
    CheckSkipped,
    Needs,
    Outcome,
    Section,
)
from .report import format_summary, junit_xml, write_junit
from .runner import ContractReport, ContractSession, run_contract, select_checks

__all__ = [
    "Check",
    "CheckContext",
    "CheckFailure",
    "CheckResult",
    "CheckSkipped",
    "ContractConfig",
    "ContractReport",
    "ContractSession",
    "Needs",
    "Outcome",
    "Section",
    "ServerProfile",
    "ServerUnreachableError",
    "all_checks",
    "format_summary",
    "junit_xml",
    "run_contract",
    "select_checks",
    "write_junit",
]
