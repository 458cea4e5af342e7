"""The database: models, engine and sessions, migrations' helpers, and the repositories."""
