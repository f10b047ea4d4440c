"""Media tests run the whole stack: the control plane on a real server, one SFU worker
process, an occurrence that is on now, and a terminal token for each of its sites.

The `stack`, `loopback`, `stack_options` and `peers` fixtures live in `tests/conftest.py`
(agent, terminal and web tests use them too); `tests.support.servers` holds `Stack`."""
