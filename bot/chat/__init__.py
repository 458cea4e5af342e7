"""The Telegram surface beside the handlers: texts, keyboards, callback data, views,
filters, middlewares, and the intake of updates (webhook, polling, the inbox)."""
