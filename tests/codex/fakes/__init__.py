"""Contract fakes of the vendors Codex syncs with, served over real HTTP."""
