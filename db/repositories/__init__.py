"""Repositories: queries on a session the caller owns. They never commit."""
