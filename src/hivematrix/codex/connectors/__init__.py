"""Vendor connectors: PSA (Freshservice, ConnectWise Manage) and RMM (Datto RMM).

Each connector turns a vendor's API into the records of :mod:`hivematrix.codex.sync.records`
and pushes the few writes back the vendor allows. HTTP plumbing shared by all of them (timeouts,
429 back-off, the SSRF guard) lives in :mod:`hivematrix.codex.connectors.http`.
"""
