"""GiamSat models package."""
