"""The EA side: issuing instructions to devices (issuing), what devices and owners read
about them (wire), the writer that stores execution reports (report_desk) and their
parser (reports), the long-poll hub, device keys, nonces and last-seen times."""
