"""The kiosk page in a browser uses the media stack of `tests/conftest.py` (`stack`, `peers`,
`it_user`)."""
