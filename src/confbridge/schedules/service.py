"""Apply a schedule file: create or update its units, sites and series, idempotently."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session
from vietnam_provinces import Ward

from confbridge.auth import service as auth_service
from confbridge.errors import Conflict, DomainError
from confbridge.meetings import service as meeting_service
from confbridge.meetings.models import Booking, Occurrence, Series
from confbridge.meetings.service import SeriesSpec
from confbridge.records import service as record_service
from confbridge.records.schemas import InvitationWrite
from confbridge.schedules import loader
from confbridge.schedules.loader import (
    InvitationEntry,
    Loc,
    Schedule,
    ScheduleError,
    SeriesEntry,
    SiteEntry,
    UnitEntry,
)
from confbridge.settings import Settings
from confbridge.sites import divisions
from confbridge.sites import service as site_service
from confbridge.sites.models import Site, Unit
from confbridge.timeutil import zone

ACTIONS = ("created", "updated", "unchanged")
# Series fields as the file names them, for "updated series ...: chair, sites".
FILE_FIELD_NAMES = {"chair_site_id": "chair", "site_ids": "sites", "unit_ids": "units"}
SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(SeriesSpec))


@dataclass(frozen=True)
class Change:
    """What applying did to one object of the file."""

    action: str  # one of ACTIONS
    entity: str  # unit, site or series
    label: str  # the unit's or site's name, the series' key
    fields: tuple[str, ...] = ()

    def line(self) -> str:
        text = f"{self.action} {self.entity} {self.label}"
        return f"{text}: {', '.join(self.fields)}" if self.fields else text


@dataclass
class ApplyReport:
    """Per-object outcome of applying a schedule, in file order."""

    path: Path
    changes: list[Change] = field(default_factory=list)
    chair_site_ids: list[int] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [change.line() for change in self.changes]

    def counts(self) -> dict[str, int]:
        counted = Counter(change.action for change in self.changes)
        return {action: counted[action] for action in ACTIONS}

    def summary(self) -> str:
        return ", ".join(f"{action} {count}" for action, count in self.counts().items())

    def first_series_chair_site_id(self) -> int | None:
        """The chair site of the file's first series (the demo gives it a terminal)."""
        return self.chair_site_ids[0] if self.chair_site_ids else None


def apply_file(path: Path, *, session: Session, settings: Settings, now: datetime) -> ApplyReport:
    """Load, validate and apply a schedule file; the caller commits or rolls back."""
    document = loader.load(path)
    return apply(document, session=session, settings=settings, now=now, path=path)


def apply(
    document: Schedule, *, session: Session, settings: Settings, now: datetime, path: Path
) -> ApplyReport:
    """Make the database hold what `document` declares; never commits.

    All or nothing: on any error the session is left as before the call (but for the booking
    lock's counter), so a caller may still commit other work.
    """
    loader.check(document, path)
    # Take the booking lock first: it serialises this with other bookings, and its UPDATE opens
    # the transaction, so that the savepoint below is a real one on SQLite too (pysqlite only
    # begins a transaction on a write, and a SAVEPOINT outside one would commit on release).
    meeting_service.lock_bookings(session)
    run = _Run(document, session=session, settings=settings, now=now, path=path)
    with session.begin_nested():
        run.apply_units()
        run.apply_series()
    return run.report


class _Run:
    """One application of one document: keys resolved so far and the report."""

    def __init__(
        self, document: Schedule, *, session: Session, settings: Settings, now: datetime, path: Path
    ) -> None:
        self.document = document
        self.session = session
        self.settings = settings
        self.now = now
        self.path = path
        self.report = ApplyReport(path)
        self.unit_ids: dict[str, int] = {}
        self.site_ids: dict[str, int] = {}

    # --- errors and the report ----------------------------------------------------------------

    def error(self, loc: Loc, reason: str) -> ScheduleError:
        return ScheduleError(self.path, self.document.line_of(loc), reason)

    @contextmanager
    def at(self, loc: Loc) -> Iterator[None]:
        """Turn a refusal while applying the entry at `loc` into a `ScheduleError` there."""
        try:
            yield
        except ScheduleError:
            raise
        except DomainError as exc:
            # Messages such as "rrule: ..." name the key: point at its line when the file has it.
            key = exc.message.split(":", 1)[0]
            place = (*loc, key) if self.document.spells_out((*loc, key)) else loc
            raise self.error(place, exc.message) from None
        except OverflowError:
            raise self.error(loc, "a date is too far in the past or future") from None
        except (IntegrityError, DataError) as exc:
            detail = str(exc.orig).strip().splitlines()[0]
            raise self.error(loc, f"the database refused the change: {detail}") from None

    def record(
        self, action: str, entity: str, obj: Any, label: str, fields: tuple[str, ...] = ()
    ) -> None:
        self.report.changes.append(Change(action, entity, label, fields))
        if action != "unchanged":
            auth_service.record(
                session=self.session,
                actor=f"schedule:{self.path.name}"[:120],
                action=f"{entity}_{action}",
                entity=entity,
                entity_id=obj.id,
                detail={"label": label, "fields": list(fields)},
            )

    # --- units and sites ------------------------------------------------------------------------

    def apply_units(self) -> None:
        units: dict[Loc, Unit] = {}
        for loc, entry, parent_loc in loader.iter_units(self.document):
            parent = units[parent_loc] if parent_loc is not None else None
            with self.at(loc):
                unit = units[loc] = self.ensure_unit(loc, entry, parent)
            self.unit_ids[entry.key] = unit.id
            for index, site_entry in enumerate(entry.sites):
                site_loc = (*loc, "sites", index)
                with self.at(site_loc):
                    site = self.ensure_site(site_loc, site_entry, unit)
                self.site_ids[site_entry.key] = site.id
            if entry.import_divisions:
                # Before the children: a child can then name an imported commune to add sites.
                import_loc = (*loc, "import_divisions")
                with self.at(import_loc):
                    self.import_divisions(import_loc, entry, unit)

    def unit_code(self, entry: UnitEntry) -> str | None:
        # A province that imports takes the code of the divisions data, as the import does.
        return loader.division_code(entry) if entry.import_divisions else entry.code

    def find_unit(self, loc: Loc, entry: UnitEntry, parent: Unit | None) -> Unit | None:
        code, parent_id = self.unit_code(entry), parent.id if parent else None
        unit = site_service.get_unit_by_code(session=self.session, code=code) if code else None
        if unit is not None:
            if unit.parent_id != parent_id:
                reason = f"the unit with code '{code}' ({unit.name}) sits under another parent"
                raise self.error((*loc, "code"), reason)
            return unit
        unit = site_service.get_unit_by_name(
            session=self.session, name=entry.name, parent_id=parent_id
        )
        if unit is not None and code and unit.code not in (None, code):
            reason = f"'{entry.name}' already exists there with code '{unit.code}'"
            raise self.error((*loc, "code"), reason)
        return unit

    def ensure_unit(self, loc: Loc, entry: UnitEntry, parent: Unit | None) -> Unit:
        unit = self.find_unit(loc, entry, parent)
        if unit is None:
            unit = site_service.create_unit(
                session=self.session,
                name=entry.name,
                kind=entry.kind,
                parent_id=parent.id if parent else None,
                code=self.unit_code(entry),
            )
            self.record("created", "unit", unit, unit.name)
            return unit
        if unit.kind != entry.kind:
            raise self.error((*loc, "kind"), f"'{unit.name}' already exists as a {unit.kind}")
        changed = self.update_unit(loc, entry, unit)
        self.record("updated" if changed else "unchanged", "unit", unit, unit.name, changed)
        return unit

    def update_unit(self, loc: Loc, entry: UnitEntry, unit: Unit) -> tuple[str, ...]:
        """Rename a unit found by code, or give a unit found by name its code."""
        # The sites domain has no unit update verb; these two fields carry no other rule.
        changed: list[str] = []
        if unit.name != entry.name:
            other = site_service.get_unit_by_name(
                session=self.session, name=entry.name, parent_id=unit.parent_id
            )
            if other is not None:
                raise self.error((*loc, "name"), f"another unit is named '{entry.name}' there")
            unit.name = entry.name
            changed.append("name")
        code = self.unit_code(entry)
        if code and unit.code is None:
            unit.code = code
            changed.append("code")
        if changed:
            self.session.flush()
        return tuple(changed)

    def ensure_site(self, loc: Loc, entry: SiteEntry, unit: Unit) -> Site:
        name = entry.name
        site = site_service.get_site_by_name(session=self.session, unit_id=unit.id, name=name)
        if site is None:
            site = site_service.create_site(
                session=self.session, name=name, unit_id=unit.id, sip_uri=entry.sip_uri
            )
            self.record("created", "site", site, site.name)
        elif site.archived_at is not None:
            reason = f"the site '{name}' of {unit.name} is archived; give the new one another name"
            raise self.error((*loc, "name"), reason)
        elif entry.sip_uri is not None and entry.sip_uri != site.sip_uri:
            # A site the file gives no address keeps the one set on its page.
            site_service.update_site(session=self.session, site=site, sip_uri=entry.sip_uri)
            self.record("updated", "site", site, site.name, ("sip_uri",))
        else:
            self.record("unchanged", "site", site, site.name)
        return site

    def import_divisions(self, loc: Loc, entry: UnitEntry, province_unit: Unit) -> None:
        """Import the province's communes and report each one, as if the file listed them."""
        province = divisions.find_province(entry.name)
        wards = list(Ward.iter_by_province(province.code))
        codes = [divisions.ward_code(ward) for ward in wards]
        before = set(self.session.scalars(select(Unit.code).where(Unit.code.in_(codes))))
        adopted = self.adopt_communes(loc, province_unit, wards, codes, before)
        halls_before = self.hall_ids(province_unit.id, codes)
        divisions.import_province(session=self.session, query=divisions.province_code(province))
        units = {u.code: u for u in self.session.scalars(select(Unit).where(Unit.code.in_(codes)))}
        halls = self.halls(province_unit.id, codes)
        province_hall = divisions.hall_name(province.name)
        if province_hall not in {site.name for site in entry.sites}:
            self.record_imported(halls[(province_unit.id, province_hall)], halls_before)
        for ward, code in zip(wards, codes, strict=True):
            unit = units[code]
            if code in adopted:
                self.record("updated", "unit", unit, unit.name, ("code",))
            else:
                self.record("unchanged" if code in before else "created", "unit", unit, unit.name)
            self.record_imported(halls[(unit.id, divisions.hall_name(ward.name))], halls_before)

    def adopt_communes(
        self, loc: Loc, province_unit: Unit, wards: list[Ward], codes: list[str], known: set[str]
    ) -> set[str]:
        """Give communes entered by hand (same name, no code) their division code.

        The import matches communes by code only and would otherwise trip over their names.
        """
        adopted: set[str] = set()
        for ward, code in zip(wards, codes, strict=True):
            if code in known:
                continue
            unit = site_service.get_unit_by_name(
                session=self.session, name=ward.name, parent_id=province_unit.id
            )
            if unit is None:
                continue
            kind = divisions.WARD_KINDS[ward.division_type]
            if unit.code is not None or unit.kind != kind:
                reason = (
                    f"{province_unit.name} already has a unit '{ward.name}' "
                    f"({unit.kind}, code {unit.code or 'none'}) that is not {kind} {code}"
                )
                raise self.error(loc, reason)
            unit.code = code
            adopted.add(code)
        self.session.flush()
        return adopted

    def record_imported(self, site: Site, before: set[int]) -> None:
        self.record("unchanged" if site.id in before else "created", "site", site, site.name)

    def halls(self, province_id: int, codes: list[str]) -> dict[tuple[int, str], Site]:
        """The sites of the province and of its communes, by (unit id, name)."""
        communes = select(Unit.id).where(Unit.code.in_(codes))
        query = select(Site).where((Site.unit_id == province_id) | Site.unit_id.in_(communes))
        return {(s.unit_id, s.name): s for s in self.session.scalars(query)}

    def hall_ids(self, province_id: int, codes: list[str]) -> set[int]:
        return {site.id for site in self.halls(province_id, codes).values()}

    # --- series -------------------------------------------------------------------------------

    def apply_series(self) -> None:
        for index, entry in enumerate(self.document.series):
            loc = ("series", index)
            with self.at(loc):
                chair_site_id = self.ensure_series(loc, entry)
            self.report.chair_site_ids.append(chair_site_id)

    def wanted_spec(self, loc: Loc, entry: SeriesEntry) -> SeriesSpec:
        if entry.duration_min > self.settings.meetings.max_duration_min:
            limit = self.settings.meetings.max_duration_min
            raise self.error((*loc, "duration_min"), f"duration_min: at most {limit} minutes")
        unit_ids = [self.unit_ids[key] for key in entry.units]
        for index, code in enumerate(entry.unit_codes):
            unit = site_service.get_unit_by_code(session=self.session, code=code)
            if unit is None:
                raise self.error((*loc, "unit_codes", index), f"no unit has code '{code}'")
            unit_ids.append(unit.id)
        data = {
            "title": entry.title,
            "kind": entry.kind.value,
            "mode": entry.mode.value,
            "rrule": entry.rrule,
            "dtstart": entry.dtstart,
            "tz": entry.tz,
            "duration_min": entry.duration_min,
            "chair_site_id": self.site_ids[entry.chair],
            "site_ids": [self.site_ids[key] for key in entry.sites],
            "unit_ids": unit_ids,
            "exdates": entry.exdates,
            "skip_holidays": entry.skip_holidays,
        }
        return meeting_service.build_spec(data, default_tz=self.settings.meetings.default_tz)

    def ensure_series(self, loc: Loc, entry: SeriesEntry) -> int:
        wanted = self.wanted_spec(loc, entry)
        dial = self.dial_fields(entry)
        series = meeting_service.get_by_source_key(session=self.session, source_key=entry.key)
        if series is None:
            with self.conflicts(loc, wanted.tz):
                series = meeting_service.create(
                    session=self.session,
                    # a file states its series' first dates on purpose: meetings before now
                    # are recorded as held, as the file says
                    series_in={**dataclasses.asdict(wanted), **dial, "record_past": True},
                    settings=self.settings.meetings,
                    now=self.now,
                    source_key=entry.key,
                )
            self.apply_invitation(loc, entry, series)
            self.record("created", "series", series, entry.key)
            return wanted.chair_site_id
        current = meeting_service.spec_of(series)
        changed = [name for name in SPEC_FIELDS if getattr(current, name) != getattr(wanted, name)]
        names = tuple(FILE_FIELD_NAMES.get(name, name) for name in changed)
        if not changed and series.ended_at is None and self.invitations_stale(series, wanted):
            # Sites were added or archived under an invited unit since the booking: passing the
            # same units makes the meetings service re-plan, which books the sites now there.
            changed, names = ["unit_ids"], ("invited sites",)
        dial_changed = [name for name, value in dial.items() if getattr(series, name) != value]
        names += tuple(dial_changed)
        if changed or dial_changed:
            with self.conflicts(loc, wanted.tz):
                meeting_service.update(
                    session=self.session,
                    series=series,
                    series_in={
                        **{name: getattr(wanted, name) for name in changed},
                        **{name: dial[name] for name in dial_changed},
                    },
                    settings=self.settings.meetings,
                    now=self.now,
                )
        if self.apply_invitation(loc, entry, series):
            names += ("invitation",)
        action = "updated" if names else "unchanged"
        self.record(action, "series", series, entry.key, names)
        return wanted.chair_site_id

    def apply_invitation(self, loc: Loc, entry: SeriesEntry, series: Series) -> bool:
        """Give the series the file's invitation and agenda; True when that changed them."""
        given = entry.invitation
        if given is None:
            return False  # not managed by the file: kept as set on the page
        site_id = self.site_ids.get
        try:
            invitation_in = self.invitation_write(given, site_id)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            message = str(first["msg"]).removeprefix("Value error, ")
            raise self.error((*loc, "invitation"), f"invitation {where}: {message}") from None
        with self.at((*loc, "invitation")):
            return record_service.replace_series_invitation(
                session=self.session, series=series, invitation_in=invitation_in
            )

    @staticmethod
    def invitation_write(given: InvitationEntry, site_id: Any) -> InvitationWrite:
        return InvitationWrite.model_validate(
            {
                "document_number": given.number,
                "document_date": given.document_date,
                "parent_body": given.parent_body,
                "issuing_body": given.issuing_body,
                "place": given.place,
                "signer_name": given.signer,
                "signer_title": given.signer_title,
                "summary": given.summary,
                "attendees": [
                    {
                        "site_id": site_id(g.site) if g.site else None,
                        "text": g.text,
                        "roles": g.roles,
                    }
                    for g in given.attendees
                ],
                "agenda": [
                    {
                        "title": item.title,
                        "presenter": item.presenter,
                        "presenter_site_id": site_id(item.presenter_site)
                        if item.presenter_site
                        else None,
                        "planned_min": item.minutes,
                    }
                    for item in given.agenda
                ],
            }
        )

    @staticmethod
    def dial_fields(entry: SeriesEntry) -> dict[str, str]:
        """The dial-in fields the file gives; those left out keep their value (a series' number
        and PIN are generated once, and may be changed on its page)."""
        given = {
            "meeting_number": entry.meeting_number,
            "pin": entry.pin,
            "upstream_sip_uri": entry.upstream_sip_uri,
        }
        return {name: value for name, value in given.items() if value is not None}

    def invitations_stale(self, series: Series, wanted: SeriesSpec) -> bool:
        """Whether coming occurrences book other sites than the series invites today."""
        _, _, expected = meeting_service.invited_site_ids(self.session, wanted)
        # "Coming" as the meetings service re-plans it: neither planned nor moved into the past.
        coming = select(Occurrence.id).where(
            Occurrence.series_id == series.id,
            Occurrence.start_at >= self.now,
            Occurrence.recurrence_at >= self.now,
        )
        in_coming = Booking.occurrence_id.in_(coming)
        per_occurrence = set(
            self.session.scalars(
                select(func.count()).where(in_coming).group_by(Booking.occurrence_id)
            )
        )
        if not per_occurrence:
            return False
        booked = set(self.session.scalars(select(Booking.site_id).where(in_coming).distinct()))
        # Each occurrence books as many sites as expected, and together exactly those.
        return per_occurrence != {len(expected)} or booked != expected

    @contextmanager
    def conflicts(self, loc: Loc, tz: str) -> Iterator[None]:
        """Name the first clash of a refused booking: site, meeting and local start."""
        try:
            yield
        except Conflict as exc:
            found = exc.extra.get("conflicts")
            if not found:
                raise
            first = found[0]
            start = datetime.fromisoformat(first["start_at"]).astimezone(zone(tz))
            count = exc.extra.get("conflict_count", len(found))
            reason = (
                f"{count} booking(s) would overlap meetings already booked; first: "
                f"{first['site_name']} is in '{first['series_title']}' "
                f"at {start:%Y-%m-%d %H:%M} ({tz})"
            )
            raise self.error(loc, reason) from None
