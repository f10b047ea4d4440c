"""What both planes share, and nothing else: the contracts between the control plane and the
SFU (`contracts`), logging, owned background tasks, redaction of secrets, TURN credentials, port
ranges and the version. It imports neither `confbridge` nor `sfu`."""

__version__ = "0.1.0"
