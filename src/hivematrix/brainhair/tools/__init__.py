"""Brainhair's tools: one registry served over MCP and as API tool-use schemas."""
