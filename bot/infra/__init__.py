"""Infrastructure the rest stands on: the clock, the outbox and the send path to Telegram,
pub/sub between instances, rate limits, metrics and the update log."""
