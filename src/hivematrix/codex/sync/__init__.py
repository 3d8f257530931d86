"""Sync: connectors produce records, the store applies them, the runner records each job."""
