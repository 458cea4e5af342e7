"""The EA side: issuing instructions to devices, their wire format, the long-poll hub,
device keys and nonces, and the writer that stores execution reports."""
