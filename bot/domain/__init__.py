"""The business rules: signals and approvals, subscriptions and checkout, devices as the
user manages them, referrals, commissions and payouts. Plain data in and out, errors with
codes; nothing here knows Telegram, HTTP or the wording of a message."""
