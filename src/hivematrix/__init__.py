"""HiveMatrix: a self-hosted platform for Managed Service Providers."""

__version__ = "0.1.0"
