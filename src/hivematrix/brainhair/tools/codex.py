"""Codex tools: companies, contacts, assets, network equipment and tickets, read with the
chatting user's token (a client user would see only their own company, as in Codex's UI).

Answers keep the fields a technician asks about and leave Codex's bookkeeping out; lists are
capped and say when they were cut.
"""

from __future__ import annotations

from typing import Any

from hivematrix.brainhair.tools.base import Tool, ToolContext
from hivematrix.brainhair.tools.calls import (
    ACCOUNT,
    call,
    capped,
    choice,
    integer,
    limit,
    obj,
    pick,
    segment,
    short,
    text,
)

COMPLIANCE_LEVELS = ("standard", "hipaa", "cjis")
NETWORK_KINDS = ("router", "switch", "firewall", "access_point")

COMPANY_FIELDS = ("account_number", "name", "compliance_level", "billing_plan",
                  "contract_term_length", "support_level", "active", "archived_at",
                  "parent_account_number")
COMPANY_DETAIL = (*COMPANY_FIELDS, "description", "contract_start_date", "contract_end_date",
                  "domains", "main_phone", "address", "psa_source", "ancestors")
CONTACT_FIELDS = ("id", "name", "email", "work_phone", "mobile_phone", "title", "active",
                  "vip", "roles")
ASSET_FIELDS = ("id", "account_number", "hostname", "device_category", "billing_type",
                "operating_system", "online", "last_seen", "internal_ip",
                "last_logged_in_user", "patch_status", "antivirus_product", "warranty_expiry",
                "warranty_status", "source", "rmm_source")
ASSET_DETAIL = (*ASSET_FIELDS, "serial_number", "model", "manufacturer", "purchase_date",
                "external_ip", "last_reboot", "domain", "description", "backup_bytes",
                "portal_url", "retired_at", "contacts", "rmm_device_id")
NETWORK_FIELDS = ("id", "account_number", "kind", "name", "management_ip", "manufacturer",
                  "model", "firmware", "serial_number", "notes", "location_name")
TICKET_FIELDS = ("id", "number", "account_number", "subject", "status", "priority",
                 "ticket_type", "requester_name", "responder_id", "created_at", "updated_at",
                 "due_by", "closed_at", "total_hours")
TICKET_DETAIL = (*TICKET_FIELDS, "company_name", "responder_name", "fr_due_by",
                 "first_responded_at", "source", "external_id")
#: How much of a ticket's text the model gets.
DESCRIPTION_CHARS = 4000
CONVERSATION_CHARS = 1500
CONVERSATIONS = 20
TIME_ENTRIES = 30

QUERY = text("Words to look for (names, account numbers, e-mails, hostnames...).",
             max_length=200)
OFFSET = integer("Skip this many (for the next page).", maximum=100_000)
STATUS_LIST = text("Ticket status, or several separated by commas (e.g. open, pending, "
                   "customer_replied, on_hold, resolved, closed).", max_length=200,
                   pattern=r"^[a-z][a-z0-9_]*(\s*,\s*[a-z][a-z0-9_]*)*$")


def _page(ctx: ToolContext, path: str, args: dict[str, Any], fields: tuple[str, ...],
          params: dict[str, Any], default: int = 25) -> dict[str, Any]:
    size = int(args.get("limit", default))
    answer = call(ctx, "codex", path, params={**params, "limit": size,
                                              "offset": args.get("offset", 0)})
    items = [pick(item, fields) for item in answer.get("items", [])]
    result = capped(items, size, total=int(answer.get("total", len(items))))
    result["offset"] = answer.get("offset", 0)
    return result


# --- companies -----------------------------------------------------------------------------

def list_companies(ctx: ToolContext, args: dict[str, Any]) -> Any:
    params: dict[str, Any] = {"q": args.get("query"),
                              "compliance_level": args.get("compliance_level"),
                              "sort": "name"}
    if "active" in args:
        params["active"] = "true" if args["active"] else "false"
    if not args.get("include_archived", False):
        params["archived"] = "false"
    return _page(ctx, "/api/companies", args, COMPANY_FIELDS, params, default=50)


def get_company(ctx: ToolContext, args: dict[str, Any]) -> Any:
    account = segment(args["account_number"])
    company = pick(call(ctx, "codex", f"/api/companies/{account}"), COMPANY_DETAIL)
    locations = call(ctx, "codex", f"/api/companies/{account}/locations") or []
    children = call(ctx, "codex", f"/api/companies/{account}/children") or []
    company["locations"] = [pick(item, ("id", "name", "address", "phone"))
                            for item in locations[:20]]
    company["child_companies"] = [pick(item, ("account_number", "name"))
                                  for item in children[:50]]
    return company


# --- contacts, assets, network -------------------------------------------------------------

def list_contacts(ctx: ToolContext, args: dict[str, Any]) -> Any:
    params = {"q": args.get("query"), "account_number": args.get("account_number"),
              "sort": "name"}
    if not args.get("include_inactive", False):
        params["active"] = "true"
    return _page(ctx, "/api/contacts", args, CONTACT_FIELDS, params, default=50)


def get_contact(ctx: ToolContext, args: dict[str, Any]) -> Any:
    return pick(call(ctx, "codex", f"/api/contacts/{int(args['contact_id'])}"),
                (*CONTACT_FIELDS, "first_name", "last_name", "secondary_emails"))


def list_assets(ctx: ToolContext, args: dict[str, Any]) -> Any:
    params: dict[str, Any] = {"q": args.get("query"),
                              "account_number": args.get("account_number"),
                              "device_category": args.get("device_category"),
                              "billing_type": args.get("billing_type"), "sort": "hostname"}
    if "online" in args:
        params["online"] = "true" if args["online"] else "false"
    return _page(ctx, "/api/assets", args, ASSET_FIELDS, params, default=50)


def get_asset(ctx: ToolContext, args: dict[str, Any]) -> Any:
    asset = pick(call(ctx, "codex", f"/api/assets/{int(args['asset_id'])}"), ASSET_DETAIL)
    asset["description"] = short(asset.get("description"), 1000)
    return asset


def list_network_equipment(ctx: ToolContext, args: dict[str, Any]) -> Any:
    params = {"q": args.get("query"), "account_number": args.get("account_number"),
              "kind": args.get("kind"), "sort": "name"}
    return _page(ctx, "/api/network_equipment", args, NETWORK_FIELDS, params, default=50)


# --- tickets -------------------------------------------------------------------------------

def list_tickets(ctx: ToolContext, args: dict[str, Any]) -> Any:
    status = args.get("status")
    params = {"q": args.get("query"), "account_number": args.get("account_number"),
              "status": ",".join(part.strip() for part in status.split(",")) if status
              else None, "priority": args.get("priority"), "sort": "-updated_at"}
    return _page(ctx, "/api/tickets", args, TICKET_FIELDS, params)


def get_ticket(ctx: ToolContext, args: dict[str, Any]) -> Any:
    raw = call(ctx, "codex", f"/api/tickets/{int(args['ticket_id'])}")
    ticket = pick(raw, TICKET_DETAIL)
    ticket["description_text"] = short(raw.get("description_text"), DESCRIPTION_CHARS)
    conversations = raw.get("conversations") or []
    recent = conversations[-CONVERSATIONS:]
    ticket["conversations"] = [{
        **pick(item, ("private", "incoming", "author", "created_at")),
        "body_text": short(item.get("body_text"), CONVERSATION_CHARS)} for item in recent]
    if len(conversations) > len(recent):
        ticket["conversations_note"] = (f"Only the last {len(recent)} of "
                                        f"{len(conversations)} conversation entries.")
    entries = raw.get("time_entries") or []
    ticket["time_entries"] = [pick(item, ("hours", "billable", "agent_id", "note",
                                          "executed_at")) for item in entries[:TIME_ENTRIES]]
    if len(entries) > TIME_ENTRIES:
        ticket["time_entries_note"] = f"Only {TIME_ENTRIES} of {len(entries)} time entries."
    return ticket


# --- one search over everything ------------------------------------------------------------

SEARCHED = (("companies", "/api/companies", COMPANY_FIELDS[:4]),
            ("contacts", "/api/contacts", ("id", "name", "email", "title", "roles")),
            ("assets", "/api/assets", ("id", "account_number", "hostname", "device_category",
                                       "online", "last_logged_in_user")),
            ("tickets", "/api/tickets", ("id", "number", "account_number", "subject",
                                         "status", "updated_at")))


def search(ctx: ToolContext, args: dict[str, Any]) -> Any:
    """Codex has no cross-entity search route: each list's own ``q`` filter, a few hits of
    each."""
    size = int(args.get("limit", 10))
    found: dict[str, Any] = {"query": args["query"]}
    for key, path, fields in SEARCHED:
        answer = call(ctx, "codex", path, params={"q": args["query"], "limit": size})
        items = [pick(item, fields) for item in answer.get("items", [])]
        found[key] = capped(items, size, total=int(answer.get("total", len(items))))
    return found


TOOLS: tuple[Tool, ...] = (
    Tool("codex_list_companies",
         "List or search client companies (name, account number, description). Returns "
         "account numbers, compliance levels, billing plans and support levels.",
         obj({"query": QUERY,
              "compliance_level": choice("Only companies at this compliance level.",
                                         COMPLIANCE_LEVELS),
              "active": {"type": "boolean", "description": "Only active (true) or inactive "
                                                           "(false) companies."},
              "include_archived": {"type": "boolean",
                                   "description": "Include archived companies."},
              "limit": limit(50, 200), "offset": OFFSET}),
         list_companies),
    Tool("codex_get_company",
         "One company in detail: compliance level (standard, hipaa, cjis), plan, contract "
         "dates, support level, domains, locations and child companies.",
         obj({"account_number": ACCOUNT}, ["account_number"]), get_company),
    Tool("codex_list_contacts",
         "List or search contacts (people at client companies), optionally of one company.",
         obj({"account_number": ACCOUNT, "query": QUERY,
              "include_inactive": {"type": "boolean",
                                   "description": "Include deactivated contacts."},
              "limit": limit(50, 200), "offset": OFFSET}),
         list_contacts),
    Tool("codex_get_contact", "One contact with phone numbers, title and roles at companies.",
         obj({"contact_id": integer("Codex's contact id.", minimum=1)}, ["contact_id"]),
         get_contact),
    Tool("codex_list_assets",
         "List or search assets (computers, servers, printers...) by company, hostname, "
         "serial number or last logged-in user, as last synced from the RMM.",
         obj({"account_number": ACCOUNT, "query": QUERY,
              "device_category": text("Device category, e.g. Desktop, Laptop, Server.",
                                      max_length=100),
              "billing_type": choice("Effective billing type.",
                                     ("Workstation", "Server", "VM", "Switch", "Firewall",
                                      "Printer")),
              "online": {"type": "boolean", "description": "Only online or offline ones."},
              "limit": limit(50, 200), "offset": OFFSET}),
         list_assets),
    Tool("codex_get_asset",
         "One asset in detail (hardware, warranty, IPs, patch and antivirus state, its users, "
         "its RMM device id), as last synced. For live state use rmm_device_details.",
         obj({"asset_id": integer("Codex's asset id.", minimum=1)}, ["asset_id"]), get_asset),
    Tool("codex_list_network_equipment",
         "Network equipment (routers, switches, firewalls, access points) of a company or "
         "matching a search.",
         obj({"account_number": ACCOUNT, "query": QUERY,
              "kind": choice("Only this kind.", NETWORK_KINDS),
              "limit": limit(50, 200), "offset": OFFSET}),
         list_network_equipment),
    Tool("codex_list_tickets",
         "List tickets, newest update first, by company, status, priority or words in the "
         "subject, number or requester.",
         obj({"account_number": ACCOUNT, "status": STATUS_LIST,
              "priority": text("Priority, or several separated by commas (low, medium, high, "
                               "urgent).", max_length=100,
                               pattern=r"^[a-z][a-z0-9_]*(\s*,\s*[a-z][a-z0-9_]*)*$"),
              "query": QUERY, "limit": limit(25, 100), "offset": OFFSET}),
         list_tickets),
    Tool("codex_get_ticket",
         "One ticket with its description, conversation (latest entries) and time entries.",
         obj({"ticket_id": integer("Codex's ticket id (`id` in the ticket list, not the PSA "
                                   "number).", minimum=1)}, ["ticket_id"]),
         get_ticket),
    Tool("codex_search",
         "Search companies, contacts, assets and tickets at once for a word or name; a few "
         "hits of each.",
         obj({"query": QUERY, "limit": limit(10, 25)}, ["query"]), search),
)
