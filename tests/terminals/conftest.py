"""The media stack of tests/sfu, for the kiosk page in a browser."""

from tests.agent.conftest import it_user  # noqa: F401
from tests.sfu.conftest import loopback, peers, stack, stack_options  # noqa: F401
