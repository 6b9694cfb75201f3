"""Hooks for the schemathesis run (scripts/schemathesis.sh), loaded through SCHEMATHESIS_HOOKS.

Which links the stateful phase walked, and which it did not: schemathesis prints only their
count (`API Links: N covered / M selected / T total`). This handler counts a link as covered the
way schemathesis does (a step made through the link, with at least one value it carries
applied) and also records the statuses those steps were answered; at the end it writes
SCHEMATHESIS_LINKS_REPORT (JSON): every link of the state machine (declared in the document and
inferred by schemathesis), each with `covered`, `inferred` and `statuses`.
"""

import json
import os
from collections import defaultdict

import schemathesis
from schemathesis.cli.commands.run.handlers.base import EventHandler
from schemathesis.cli.ext.handlers import handler
from schemathesis.engine import Status, events
from schemathesis.engine.run import PhaseName
from schemathesis.generation import GenerationMode
from schemathesis.generation.meta import TestPhase

_SCHEMA = {}


def _capture_schema() -> None:
    """Keeps the schema the run loads, to list its links (inferred ones included) at the end."""
    from schemathesis.specs.openapi.schemas import OpenApiSchema

    original = OpenApiSchema.apply_stateful_inference

    def wrapped(self, observations):
        result = original(self, observations)
        _SCHEMA["schema"] = self
        return result

    OpenApiSchema.apply_stateful_inference = wrapped


_capture_schema()


def _all_links() -> dict:
    """Every link of the state machine: its id (as schemathesis names transitions) and whether
    schemathesis inferred it."""
    schema = _SCHEMA.get("schema")
    if schema is None:
        return {}
    from schemathesis.core.result import Ok
    from schemathesis.specs.openapi.stateful import collect_transitions

    operations = [r.ok() for r in schema.get_all_operations() if isinstance(r, Ok)]
    links = {}
    for ops in collect_transitions(operations).operations.values():
        for link in ops.outgoing:
            links[link.full_name] = link.is_inferred
    return links


@handler()
class LinkCoverage(EventHandler):
    def __init__(self, *args, **kwargs) -> None:
        self.statuses = defaultdict(lambda: defaultdict(int))
        # Every step of the stateful phase, by operation: what it was answered.
        self.operations = defaultdict(lambda: defaultdict(int))
        self.scenarios = 0

    def handle_event(self, ctx, event) -> None:
        if not isinstance(event, events.ScenarioFinished) or event.phase != PhaseName.STATEFUL_TESTING:
            return
        # As the CLI counts them: not a replay, and not skipped or interrupted.
        if event.is_final or event.status in (Status.INTERRUPTED, Status.SKIP, None):
            return
        self.scenarios += 1
        recorder = event.recorder
        for case_id, case in recorder.cases.items():
            interaction = recorder.interactions.get(case_id)
            status = (
                str(interaction.response.status_code)
                if interaction is not None and interaction.response is not None
                else "none"
            )
            self.operations[case.value.operation.label][status] += 1
            if case.transition is None or not case.is_transition_applied:
                continue
            self.statuses[case.transition.id][status] += 1

    def shutdown(self, ctx) -> None:
        path = os.environ.get("SCHEMATHESIS_LINKS_REPORT")
        if not path:
            return
        links = _all_links()
        report = {
            name: {
                "covered": name in self.statuses,
                "inferred": inferred,
                "statuses": dict(self.statuses.get(name, {})),
            }
            for name, inferred in sorted(links.items())
        }
        # A covered link the listing missed (should not happen) is kept too.
        for name, statuses in self.statuses.items():
            report.setdefault(name, {"covered": True, "inferred": None, "statuses": dict(statuses)})
        with open(path, "w") as f:
            operations = {label: dict(statuses) for label, statuses in self.operations.items()}
            json.dump(
                {"scenarios": self.scenarios, "links": report, "operations": operations},
                f,
                indent=1,
                sort_keys=True,
            )


# Names made unique in the stateful phase. Hypothesis draws the simplest names first ("0",
# "A", ...), so after the first scenario most creations would repeat a name already taken and be
# answered 409, and no link could start from them. A repeated name of a positive case is given a
# numbered suffix (still valid: same characters, within the length limit), except one repeat in
# four, which is sent as drawn so the 409 answer is still walked.
CREATES = {
    "/api/v1/apps": 100,
    "/api/v1/tokens": 100,
    "/api/v1/notification-channels": 100,
}
_sent: dict = {}
_renamed = [0]


@schemathesis.hook
def before_call(context, case, kwargs):
    meta = case._meta
    if meta is None or meta.phase.name != TestPhase.STATEFUL:
        return
    if meta.generation.mode != GenerationMode.POSITIVE or case.method.upper() != "POST":
        return
    limit = CREATES.get(case.operation.path)
    body = case.body
    if limit is None or not isinstance(body, dict) or not isinstance(body.get("name"), str):
        return
    name = body["name"]
    seen = _sent.get((case.operation.path, name), 0)
    _sent[(case.operation.path, name)] = seen + 1
    if seen == 0 or seen % 4 == 0:
        return
    _renamed[0] += 1
    suffix = f"-u{_renamed[0]}"
    body["name"] = name[: max(1, limit - len(suffix))] + suffix
