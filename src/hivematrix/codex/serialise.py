"""Rows as the API shows them: one function per kind, shared by every endpoint and export.

Dates and datetimes are ISO 8601 (UTC with offset); money-like hours are strings of a
Decimal; ``backup_bytes`` is an integer number of bytes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from hivematrix.codex.assets import warranty_status
from hivematrix.codex.billing_types import effective
from hivematrix.codex.models import (
    Agent,
    Asset,
    Company,
    Contact,
    Conversation,
    Location,
    NetworkDevice,
    NetworkLink,
    PSAAgent,
    Ticket,
    TimeEntry,
)


def iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def company(row: Company) -> dict[str, Any]:
    return {
        "account_number": row.account_number, "name": row.name,
        "description": row.description,
        "parent_account_number": row.parent.account_number if row.parent else None,
        "compliance_level": row.compliance_level, "billing_plan": row.billing_plan,
        "contract_term_length": row.contract_term_length,
        "contract_start_date": iso(row.contract_start_date),
        "contract_end_date": iso(row.contract_end_date), "support_level": row.support_level,
        "domains": list(row.domains or []), "main_phone": row.main_phone,
        "address": row.address, "psa_source": row.psa_source,
        "psa_external_id": row.psa_external_id, "active": row.active,
        "archived_at": iso(row.archived_at), "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def location(row: Location) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "address": row.address, "phone": row.phone}


def contact(row: Contact, *, company_id: int | None = None) -> dict[str, Any]:
    """A contact; with ``company_id`` only the roles at that company are listed."""
    roles = [{"account_number": role.company.account_number, "company_name": role.company.name,
              "role": role.role} for role in row.roles
             if company_id is None or role.company_id == company_id]
    return {
        "id": row.id, "name": row.name, "first_name": row.first_name,
        "last_name": row.last_name, "email": row.email,
        "secondary_emails": list(row.secondary_emails or []), "work_phone": row.work_phone,
        "mobile_phone": row.mobile_phone, "title": row.title, "active": row.active,
        "vip": row.vip, "roles": roles, "external_source": row.external_source,
        "external_id": row.external_id,
    }


def asset(row: Asset, *, today: date | None = None, contacts: bool = False) -> dict[str, Any]:
    """An asset; ``warranty_status`` is judged on ``today`` (UTC today by default), and with
    ``contacts`` the asset's users are listed."""
    data = {
        "id": row.id, "account_number": row.company.account_number, "hostname": row.hostname,
        "device_category": row.device_category,
        "billing_type": effective(row.billing_type, row.billing_type_override),
        "billing_type_derived": row.billing_type,
        "billing_type_override": row.billing_type_override,
        "billing_type_unmapped": row.billing_type_unmapped,
        "operating_system": row.operating_system, "serial_number": row.serial_number,
        "model": row.model, "manufacturer": row.manufacturer,
        "purchase_date": iso(row.purchase_date), "warranty_expiry": iso(row.warranty_expiry),
        "warranty_status": warranty_status(row.warranty_expiry,
                                           today or datetime.now(UTC).date()),
        "internal_ip": row.internal_ip, "external_ip": row.external_ip,
        "last_seen": iso(row.last_seen), "last_reboot": iso(row.last_reboot),
        "online": row.online, "patch_status": row.patch_status,
        "antivirus_product": row.antivirus_product,
        "last_logged_in_user": row.last_logged_in_user, "domain": row.domain,
        "description": row.description, "backup_bytes": row.backup_bytes,
        "udfs": dict(row.udfs or {}), "source": row.source,
        "rmm_source": row.rmm_source, "rmm_device_id": row.rmm_device_id,
        "portal_url": row.portal_url, "retired_at": iso(row.retired_at),
    }
    if contacts:
        data["contacts"] = [{"id": person.id, "name": person.name, "email": person.email,
                             "active": person.active}
                            for person in sorted(row.contacts, key=lambda item: item.name)]
    return data


def network_device(row: NetworkDevice) -> dict[str, Any]:
    return {
        "id": row.id, "account_number": row.company.account_number, "kind": row.kind,
        "name": row.name, "management_ip": row.management_ip,
        "manufacturer": row.manufacturer, "model": row.model, "firmware": row.firmware,
        "serial_number": row.serial_number, "notes": row.notes,
        "location_id": row.location_id,
        "location_name": row.location.name if row.location else None,
    }


def network_link(row: NetworkLink) -> dict[str, Any]:
    return {"id": row.id, "from_device_id": row.from_device_id, "from_port": row.from_port,
            "to_device_id": row.to_device_id, "to_port": row.to_port, "kind": row.kind}


def agent(row: PSAAgent) -> dict[str, Any]:
    return {"id": row.id, "source": row.source, "external_id": row.external_id,
            "name": row.name, "email": row.email, "active": row.active,
            "job_title": row.job_title, "group_ids": list(row.group_ids or [])}


def time_entry(row: TimeEntry) -> dict[str, Any]:
    return {"id": row.external_id, "hours": str(row.hours), "billable": row.billable,
            "agent_id": row.agent_external_id, "note": row.note,
            "executed_at": iso(row.executed_at)}


def conversation(row: Conversation) -> dict[str, Any]:
    return {"id": row.external_id, "private": row.private, "incoming": row.incoming,
            "author": row.author, "body_text": row.body_text,
            "created_at": iso(row.created_at)}


def ticket(row: Ticket, *, details: bool = False) -> dict[str, Any]:
    data = {
        "id": row.id, "source": row.source, "external_id": row.external_id,
        "number": row.number,
        "account_number": row.company.account_number if row.company else None,
        "subject": row.subject, "description_text": row.description_text,
        "status": row.status, "status_raw": row.status_raw, "priority": row.priority,
        "priority_raw": row.priority_raw, "ticket_type": row.ticket_type,
        "requester_name": row.requester_name, "requester_email": row.requester_email,
        "responder_id": row.responder_external_id, "group_id": row.group_id,
        "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
        "closed_at": iso(row.closed_at), "fr_due_by": iso(row.fr_due_by),
        "due_by": iso(row.due_by), "first_responded_at": iso(row.first_responded_at),
        "total_hours": str(row.total_hours),
    }
    if details:
        data["time_entries"] = [time_entry(entry) for entry in row.time_entries]
        data["conversations"] = [conversation(entry) for entry in row.conversations]
    return data


def staff_agent(row: Agent) -> dict[str, Any]:
    """A HiveMatrix staff member's Codex row and preferences."""
    return {"id": row.id, "username": row.username, "email": row.email, "name": row.name,
            "enabled": row.enabled, "theme": row.theme, "home_page": row.home_page,
            "color_theme": row.color_theme, "knowledge_tree_view": row.knowledge_tree_view,
            "created_at": iso(row.created_at), "last_synced_at": iso(row.last_synced_at)}
