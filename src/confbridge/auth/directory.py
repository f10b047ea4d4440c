"""Directory sign-in: a username and password checked by an LDAP / Active Directory server.

The password is checked by binding as the user (never by reading a hash); the user's groups
are then searched with that same connection and mapped to memberships by the settings.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

from ldap3 import BASE, SUBTREE, Connection, Server
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from confbridge.settings import LdapSettings


class DirectoryUnavailable(Exception):
    """The directory could not be asked (down, unreachable, too slow)."""


@dataclass(frozen=True)
class DirectoryUser:
    dn: str
    full_name: str
    groups: frozenset[str]


def _normal(dn: str) -> str:
    """DNs compare without case or spaces after commas (as directories treat them)."""
    return ",".join(part.strip() for part in dn.split(",")).lower()


def authenticate(*, settings: LdapSettings, username: str, password: str) -> DirectoryUser | None:
    """The directory's user if the password is right; None if it is wrong (or empty: an empty
    password would be an anonymous bind, which succeeds). `DirectoryUnavailable` if the
    directory cannot answer."""
    if not settings.url or not password:
        return None
    dn = settings.user_dn_template.format(username=escape_rdn(username))
    # ldap3 sets the socket's receive timeout with whole seconds
    timeout_s = max(1, math.ceil(settings.timeout_s))
    server = Server(settings.url, connect_timeout=timeout_s)
    connection = Connection(
        server, user=dn, password=password, receive_timeout=timeout_s, read_only=True
    )
    try:
        if not connection.bind():
            return None
        full_name = ""
        if connection.search(dn, "(objectClass=*)", BASE, attributes=["cn", "displayName"]):
            entry = connection.entries[0]
            for attribute in ("displayName", "cn"):
                values = entry[attribute].values if attribute in entry else []
                if values:
                    full_name = str(values[0])
                    break
        found = connection.search(
            settings.group_base,
            settings.group_filter.format(user_dn=escape_filter_chars(dn)),
            SUBTREE,
            attributes=[],
        )
        groups = (
            frozenset(_normal(e.entry_dn) for e in connection.entries) if found else frozenset()
        )
        return DirectoryUser(dn=dn, full_name=full_name[:200], groups=groups)
    except (LDAPException, OSError) as exc:
        raise DirectoryUnavailable(str(exc)) from None
    finally:
        with contextlib.suppress(LDAPException):  # the connection is gone either way
            connection.unbind()


def mapped_memberships(
    *, settings: LdapSettings, user: DirectoryUser
) -> list[tuple[str | None, str]]:
    """(unit code or None for the root, role) of each configured group the user is in."""
    return [
        (mapping.unit_code, mapping.role)
        for mapping in settings.groups
        if _normal(mapping.group) in user.groups
    ]
