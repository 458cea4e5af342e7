"""The Telegram surface beside the handlers: texts, keyboards, callback data, views,
filters, middlewares, the signal messages and their publisher, and the user cache."""
