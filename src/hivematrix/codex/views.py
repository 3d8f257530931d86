"""Codex's blueprints, in the order they are registered."""

from __future__ import annotations

from flask import Blueprint


def blueprints() -> list[Blueprint]:
    from hivematrix.codex import pages
    from hivematrix.codex.api import (
        agents,
        assets,
        bulk,
        companies,
        contacts,
        io,
        locations,
        network,
        psa,
        rmm,
        sync,
        tickets,
    )

    # bulk first: its /api/companies/bulk must not be read as a company's account number.
    return [bulk.bp, companies.bp, sync.bp, contacts.bp, locations.bp, assets.bp, network.bp,
            tickets.bp, psa.bp, rmm.bp, agents.bp, io.bp, pages.bp]
