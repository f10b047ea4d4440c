"""Administration pages: users and their memberships, units and sites, terminals, the audit
log. Each shows and changes only what the signed-in user's scope holds (`auth.scope`), through
the same services, checks and audit entries as the API."""

from __future__ import annotations

from fastapi import APIRouter

from confbridge.web.admin import audit, terminals, units, users

router = APIRouter(include_in_schema=False)
for _pages in (users, units, terminals, audit):
    router.include_router(_pages.router)
