"""GiamSat serving package."""
