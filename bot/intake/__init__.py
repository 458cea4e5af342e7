"""How Telegram's updates get in: stored in the inbox before they are processed, whether
they arrive by webhook (webhook.py) or by our getUpdates loop (polling.py), then fed to
the dispatcher, retried, recovered after a crash, or dead-lettered (inbox.py)."""
