"""Ledger: the billing engine — plans, overrides, monthly receipts, QuickBooks invoices and
immutable snapshots of accepted bills.

The calculation itself (:mod:`hivematrix.ledger.calculation`) is a pure function over typed
inputs (:mod:`hivematrix.ledger.inputs`); invoices are rendered from its receipt
(:mod:`hivematrix.ledger.invoice`).
"""
