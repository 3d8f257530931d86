"""RMM tools through Codex's Datto connector: live device state, and remote diagnostic quick
jobs. Running a job executes code on a client's machine, so it is a write: a person approves
the exact component, variables and reason first, and Codex admits only admins and
technicians."""

from __future__ import annotations

from typing import Any

from hivematrix.brainhair.tools.base import Proposal, Tool, ToolContext
from hivematrix.brainhair.tools.calls import call, integer, obj, pick, segment, text

ASSET_ID = integer("Codex's asset id (see codex_list_assets).", minimum=1)
VENDOR_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"
#: Who may run jobs (Codex checks again).
JOB_RUNNERS = ("admin", "technician")


def device_details(ctx: ToolContext, args: dict[str, Any]) -> Any:
    return call(ctx, "codex", f"/api/assets/{int(args['asset_id'])}/rmm")


def _job_body(args: dict[str, Any]) -> dict[str, Any]:
    return {"component_uid": args["component_uid"],
            "variables": {str(name): str(value)
                          for name, value in (args.get("variables") or {}).items()},
            "job_name": f"Brainhair: {args['reason']}"[:200]}


def propose_quick_job(ctx: ToolContext, args: dict[str, Any]) -> Proposal:
    asset = call(ctx, "codex", f"/api/assets/{int(args['asset_id'])}")
    body = _job_body(args)
    host = asset.get("hostname") or f"asset {args['asset_id']}"
    return Proposal(
        action=f"Run RMM component {body['component_uid']} on {host} "
               f"(company {asset.get('account_number')})",
        details={"asset_id": int(args["asset_id"]), "hostname": host,
                 "account_number": asset.get("account_number"),
                 "operating_system": asset.get("operating_system"),
                 "component_uid": body["component_uid"], "variables": body["variables"],
                 "reason": args["reason"], "effect": "Executes the component on the device "
                                                     "now, through the RMM."})


def run_quick_job(ctx: ToolContext, args: dict[str, Any]) -> Any:
    answer = call(ctx, "codex", f"/api/assets/{int(args['asset_id'])}/rmm/jobs", "POST",
                  json=_job_body(args))
    job = answer.get("job", {}) if isinstance(answer, dict) else {}
    return {"started": True, "asset": answer.get("asset"),
            "job": pick(job, ("job_uid", "status", "name", "created_at", "component_uid")),
            "next": "Follow it with rmm_job_status (asset_id and job_uid)."}


def job_status(ctx: ToolContext, args: dict[str, Any]) -> Any:
    return call(ctx, "codex", f"/api/assets/{int(args['asset_id'])}/rmm/jobs/"
                              f"{segment(args['job_uid'])}")


TOOLS: tuple[Tool, ...] = (
    Tool("rmm_device_details",
         "Live state of an RMM-managed device right now (online, last seen, last reboot, "
         "patches, antivirus, agent version, UDFs), asked of the RMM through Codex.",
         obj({"asset_id": ASSET_ID}, ["asset_id"]), device_details),
    Tool("rmm_run_quick_job",
         "Run a remote diagnostic component (an RMM quick job) on a device. Needs the user's "
         "approval; admins and technicians only. Prefer read-only diagnostics and give a "
         "specific reason.",
         obj({"asset_id": ASSET_ID,
              "component_uid": text("The RMM component's uid.", max_length=100,
                                    pattern=VENDOR_ID),
              "variables": {"type": "object", "description": "Component variables, name → "
                                                             "value.",
                            "maxProperties": 50,
                            "propertyNames": {"minLength": 1, "maxLength": 100},
                            "additionalProperties": {"type": "string", "maxLength": 2000}},
              "reason": text("Why this job is run (shown to the approver and in the RMM).",
                             max_length=150)},
             ["asset_id", "component_uid", "reason"]),
         run_quick_job, propose=propose_quick_job, levels=JOB_RUNNERS),
    Tool("rmm_job_status",
         "Status of a quick job started with rmm_run_quick_job, with each component's output "
         "once it has completed.",
         obj({"asset_id": ASSET_ID,
              "job_uid": text("The job uid rmm_run_quick_job returned.", max_length=100,
                              pattern=VENDOR_ID)},
             ["asset_id", "job_uid"]),
         job_status),
)
