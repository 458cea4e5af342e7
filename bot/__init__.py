"""The bot and its side server: bot/factory.py builds them, bot/app.py runs them."""
