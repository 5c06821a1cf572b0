"""One module per command: send, reflect, monitor, self-test, plot.  ``cli`` dispatches here."""
