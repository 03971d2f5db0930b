"""Command modules of the giamsat CLI, one per command family."""
