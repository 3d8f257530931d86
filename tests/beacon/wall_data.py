"""Tickets for the wall, written into Codex's database as a ticket sync would: one for each
section and SLA class, an agent's own tickets, a professional-services one, a closed one, and
a subject a customer typed to attack the page."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from hivematrix.codex.models import Company, PSAAgent, SyncJob, Ticket

XSS_SUBJECT = '<img src=x onerror="window.__pwned=1"> printer on fire'
XSS_DESCRIPTION = '<script>window.__pwned=2</script>Paper tray 2.\n\nStill smoking.'
SAM, RILEY = "7001", "7002"
PRO_GROUP = "9900"
TICKET_URL = "https://acme-msp.freshservice.com/a/tickets/{id}"
#: The views the tests configure: the catch-all helpdesk and a professional-services queue.
VIEWS = {"helpdesk": {"name": "Helpdesk", "others": True},
         "professional-services": {"name": "Professional Services",
                                   "group_ids": [PRO_GROUP]}}


@dataclass(frozen=True)
class Expected:
    """Where a seeded ticket shows on the helpdesk wall (section 0: nowhere)."""

    section: int
    sla: str


@dataclass
class WallSeed:
    expected: dict[str, Expected] = field(default_factory=dict)

    def in_section(self, number: int) -> set[str]:
        return {ticket for ticket, where in self.expected.items() if where.section == number}


def seed_wall(session: Session, *, sync_age: timedelta | None = timedelta(minutes=40)) -> WallSeed:
    """The wall's tickets (the caller commits). Times are far from every SLA edge, so a slow
    test run does not move a ticket to another class. ``sync_age``: how long ago the last
    ticket sync finished (``None``: never)."""
    now = datetime.now(UTC)
    company = Company(account_number="620547", name="Acme Dental")
    session.add(company)
    session.flush()
    session.add_all([
        PSAAgent(source="freshservice", external_id=SAM, name="Sam Tech"),
        PSAAgent(source="freshservice", external_id=RILEY, name="Riley Ng"),
        PSAAgent(source="freshservice", external_id="7003", name="Gone Agent", active=False),
    ])
    fresh = now - timedelta(minutes=10)
    seed = WallSeed()

    def ticket(external_id: str, expected: Expected, **fields: object) -> None:
        values: dict[str, object] = {
            "source": "freshservice", "external_id": external_id, "number": f"INC-{external_id}",
            "company_id": company.id, "subject": f"Ticket {external_id}",
            "status": "open", "priority": "medium", "requester_name": "Dana Reyes",
            "requester_email": "dana@acme.example", "created_at": now - timedelta(days=2),
            "updated_at": fresh, "responder_external_id": SAM,
            **fields}
        session.add(Ticket(**values))
        seed.expected[external_id] = expected

    # Section 1: waiting for a first response, each first-response SLA class once.
    ticket("101", Expected(1, "sla-overdue"), fr_due_by=now - timedelta(hours=3),
           subject=XSS_SUBJECT, description_text=XSS_DESCRIPTION,
           requester_name='<b onmouseover="window.__pwned=3">Eve</b>')
    ticket("102", Expected(1, "sla-critical"), fr_due_by=now + timedelta(hours=2),
           priority="high")
    ticket("103", Expected(1, "sla-warning"), fr_due_by=now + timedelta(hours=8),
           responder_external_id=RILEY)
    ticket("104", Expected(1, "sla-normal"), fr_due_by=now + timedelta(days=3),
           priority="low", responder_external_id=None)
    ticket("105", Expected(1, "sla-responded"), first_responded_at=now - timedelta(hours=1))
    # Section 2: the customer wrote back.
    ticket("201", Expected(2, "sla-warning"), status="customer_replied",
           responder_external_id=RILEY)
    # Section 3: an urgent ticket nobody touched for two hours.
    ticket("301", Expected(3, "sla-critical"), status="pending", priority="urgent",
           updated_at=now - timedelta(hours=2))
    # Section 4: on hold, waiting on the customer, scheduled.
    ticket("401", Expected(4, "sla-none"), status="on_hold")
    ticket("402", Expected(4, "sla-responded"), status="waiting_customer",
           agent_responded_at=now - timedelta(hours=5))
    ticket("403", Expected(4, "sla-in-progress"), status="scheduled")
    # Not on the helpdesk wall: closed, and professional services' own queue.
    ticket("501", Expected(0, ""), status="closed")
    ticket("601", Expected(0, ""), group_id=PRO_GROUP, subject="Office move project")
    if sync_age is not None:
        session.add(SyncJob(id="00000000-0000-4000-8000-000000000001", kind="tickets",
                            provider="freshservice", status="succeeded",
                            started_at=now - sync_age - timedelta(minutes=1),
                            finished_at=now - sync_age))
    session.flush()
    return seed
