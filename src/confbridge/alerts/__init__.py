"""Alerts for IT staff: raised by the monitor, stored, shown, and sent to a webhook."""
