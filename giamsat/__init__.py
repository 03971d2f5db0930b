"""GiamSat: oversight of administrative-procedure processing (CLI and settings)."""

__version__ = "0.1.0"
