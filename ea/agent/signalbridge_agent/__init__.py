"""signalbridge's device agent: a Python alternative to the MetaTrader EAs (EA_PROTOCOL.md)."""

__version__ = "1.1.0"
