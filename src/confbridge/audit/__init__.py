"""The audit log, read: who did what, when, from where, before and after (written by `auth`)."""
