"""GiamSat simulator package."""
