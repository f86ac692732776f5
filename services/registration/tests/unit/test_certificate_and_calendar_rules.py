"""The participant journey's pure rules: seminar facts, certificates, the calendar's
choice of seminars, and the documents (PDF, iCalendar) read back by independent readers."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdf
import pytest
import zxingcpp
from PIL import Image

from registration import calendar_ics, calendars, certificate_pdf, certificates, seminar_facts
from registration.calendars import CalendarEntry, EntryStatus, HeldRegistration
from registration.certificates import Attendee, CertificateStatus, CompletedSeminar
from registration.seminar_facts import SeminarFacts, Session
from seminarops_devtools.testing.ical import read_calendar
from seminarops_shared.privacy import pseudonym

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def _session(day: int, hour: int = 15, hours: int = 2) -> Session:
    starts = datetime(2026, 5, day, hour, 0, tzinfo=UTC)
    return Session(starts_at=starts, ends_at=starts + timedelta(hours=hours))


def _facts(seminar_id: str = "sem-1", **changes: object) -> SeminarFacts:
    facts = seminar_facts.scheduled(
        None,
        seminar_id=seminar_id,
        title="Coding in the classroom",
        kind="learning_event",
        programme="etwinning",
        timezone="Europe/Brussels",
        sessions=[_session(4), _session(5, hours=1)],
        now=NOW,
    )
    return replace(facts, **changes)  # type: ignore[arg-type]


def _code_source() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"code-{next(counter):016d}"


def _completed(facts: SeminarFacts | None) -> CompletedSeminar:
    return CompletedSeminar(
        seminar_id="sem-1", kind="learning_event", programme="etwinning", year=2026, facts=facts
    )


# ---- seminar facts ---------------------------------------------------------------------


def test_every_reschedule_counts_and_replaces_the_sessions() -> None:
    facts = _facts()
    once = seminar_facts.rescheduled(facts, seminar_id="sem-1", sessions=[_session(9)], now=NOW)
    twice = seminar_facts.rescheduled(once, seminar_id="sem-1", sessions=[_session(10)], now=NOW)
    assert (once.reschedules, twice.reschedules) == (1, 2)
    assert twice.sessions == (_session(10),)
    assert twice.title == "Coding in the classroom"


def test_a_capacity_only_reschedule_is_a_revision_too() -> None:
    facts = _facts()
    same = seminar_facts.rescheduled(facts, seminar_id="sem-1", sessions=facts.sessions, now=NOW)
    assert (same.sequence, same.sessions) == (1, facts.sessions)


def test_the_sequence_grows_once_more_on_cancellation() -> None:
    moved = seminar_facts.rescheduled(_facts(), seminar_id="sem-1", sessions=[_session(9)], now=NOW)
    cancelled = seminar_facts.cancelled(moved, seminar_id="sem-1", now=NOW)
    assert (moved.sequence, cancelled.sequence) == (1, 2)


def test_a_reschedule_of_a_seminar_known_from_before_keeps_what_it_can() -> None:
    facts = seminar_facts.rescheduled(None, seminar_id="old", sessions=[_session(9)], now=NOW)
    assert (facts.title, facts.reschedules, facts.sessions) == (None, 1, (_session(9),))


def test_cancelling_is_idempotent() -> None:
    once = seminar_facts.cancelled(_facts(), seminar_id="sem-1", now=NOW)
    assert once.cancelled
    assert seminar_facts.cancelled(once, seminar_id="sem-1", now=NOW + timedelta(days=1)) is once


def test_hours_add_up_every_session_or_are_unknown() -> None:
    assert seminar_facts.total_hours([_session(4), _session(5, hours=1)]) == 3.0
    assert seminar_facts.total_hours([_session(4, hours=0)]) is None
    assert seminar_facts.total_hours([]) is None


def test_session_uids_follow_the_shared_scheme() -> None:
    assert seminar_facts.session_uid("sem-1", 0) == "sem-1-0@seminar-ops"


# ---- certificates ----------------------------------------------------------------------


def test_every_known_attendee_gets_one_certificate_with_the_seminars_facts() -> None:
    known = {p: Attendee(p, f"Teacher {p}") for p in ["anna", "bert"]}
    issued = certificates.issue(
        _completed(_facts()),
        ["anna", "bert", "anna"],
        known=known,
        issued=(),
        now=NOW,
        new_code=_code_source(),
    )
    assert [(c.participant_id, c.display_name) for c in issued] == [
        ("anna", "Teacher anna"),
        ("bert", "Teacher bert"),
    ]
    first = issued[0]
    assert first.id == certificates.certificate_id("sem-1", "anna")
    assert (first.seminar_title, first.hours, first.timezone) == (
        "Coding in the classroom",
        3.0,
        "Europe/Brussels",
    )
    assert (first.starts_at, first.ends_at) == (_session(4).starts_at, _session(5, hours=1).ends_at)
    assert len({c.code for c in issued}) == 2
    assert first.status is CertificateStatus.VALID


def test_issuing_again_issues_nothing() -> None:
    known = {"anna": Attendee("anna", "Anna")}
    first = certificates.issue(
        _completed(_facts()), ["anna"], known=known, issued=(), now=NOW, new_code=_code_source()
    )
    again = certificates.issue(
        _completed(_facts()),
        ["anna"],
        known=known,
        issued=[c.id for c in first],
        now=NOW,
        new_code=_code_source(),
    )
    assert len(first) == 1
    assert again == []


def test_no_certificate_for_the_erased_the_unknown_or_a_pseudonym() -> None:
    erased = pseudonym("gone", key=b"k" * 16)
    known = {
        "gone": Attendee("gone", None, erased=True),
        erased: Attendee(erased, None),
        "kept": Attendee("kept", None),
    }
    issued = certificates.issue(
        _completed(None),
        ["gone", erased, "stranger", "kept"],
        known=known,
        issued=(),
        now=NOW,
        new_code=_code_source(),
    )
    assert [c.participant_id for c in issued] == ["kept"]
    # Facts unknown (a seminar known from before they were kept): no title, no hours.
    assert (issued[0].seminar_title, issued[0].hours, issued[0].starts_at) == (None, None, None)
    assert issued[0].kind == "learning_event"


def test_a_code_that_is_not_url_safe_is_refused() -> None:
    with pytest.raises(ValueError, match="URL-safe"):
        certificates.issue(
            _completed(None),
            ["kept"],
            known={"kept": Attendee("kept", None)},
            issued=(),
            now=NOW,
            new_code=lambda: "short/code",
        )


def test_erasure_revokes_and_forgets_the_holder_once() -> None:
    [certificate] = certificates.issue(
        _completed(_facts()),
        ["anna"],
        known={"anna": Attendee("anna", "Anna")},
        issued=(),
        now=NOW,
        new_code=_code_source(),
    )
    revoked = certificates.revoke_for_erasure(certificate, pseudonym="erased-x", now=NOW)
    assert (revoked.status, revoked.display_name, revoked.participant_id) == (
        CertificateStatus.REVOKED,
        None,
        "erased-x",
    )
    assert revoked.code == certificate.code
    later = certificates.revoke_for_erasure(revoked, pseudonym="erased-x", now=NOW + timedelta(1))
    assert later is revoked


def test_verification_codes_are_128_bit_url_safe() -> None:
    from registration.journey import new_verification_code

    codes = {new_verification_code() for _ in range(100)}
    assert len(codes) == 100
    assert all(certificates.is_code(c) and len(c) == 22 for c in codes)


# ---- the certificate as PDF ------------------------------------------------------------


def _pdf_text(document: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(document))
    return "\n".join(page.extract_text() for page in reader.pages)


def _certificate(name: str) -> certificates.Certificate:
    [certificate] = certificates.issue(
        _completed(_facts()),
        ["anna"],
        known={"anna": Attendee("anna", name)},
        issued=(),
        now=NOW,
        new_code=lambda: "AbCdEfGhIjKlMnOpQrStUv",
    )
    return certificate


def test_the_pdf_shows_name_title_dates_hours_and_code_in_any_script() -> None:
    document = certificate_pdf.render(
        _certificate("Zofia Łukasiewicz-Παπαδοπούλου"),
        verify_url="https://example.test/v1/certificates/AbCdEfGhIjKlMnOpQrStUv",
        font=DEJAVU,
    )
    text = _pdf_text(document)
    assert "Zofia Łukasiewicz-Παπαδοπούλου" in text
    assert "Coding in the classroom" in text
    assert "AbCdEfGhIjKlMnOpQrStUv" in text
    assert "2026-05-04 to 2026-05-05" in text
    assert "3 hours" in text


def test_without_a_unicode_font_the_pdf_still_names_the_holder() -> None:
    document = certificate_pdf.render(
        _certificate("Zoé Łukasiewicz"), verify_url="https://example.test/x", font=None
    )
    text = _pdf_text(document)
    assert "Zoe ?ukasiewicz" in text
    assert "AbCdEfGhIjKlMnOpQrStUv" in text


VERIFY_URL = "https://registration.example.test/v1/certificates/AbCdEfGhIjKlMnOpQrStUv"
A4_LANDSCAPE_PT = (841.89, 595.28)  # 297 x 210 mm


def _only_page(document: bytes) -> pypdf.PageObject:
    reader = pypdf.PdfReader(io.BytesIO(document))
    assert len(reader.pages) == 1
    return reader.pages[0]


def _is_a4_landscape(page: pypdf.PageObject) -> bool:
    box = page.mediabox
    return (round(float(box.width), 2), round(float(box.height), 2)) == A4_LANDSCAPE_PT


def _qr_image(page: pypdf.PageObject) -> Image.Image:
    [picture] = page.images
    return picture.image


def test_the_pdf_is_one_a4_page_whose_qr_code_reads_as_the_verification_url() -> None:
    document = certificate_pdf.render(
        _certificate("Zofia Łukasiewicz"), verify_url=VERIFY_URL, font=DEJAVU
    )
    page = _only_page(document)
    qr = _qr_image(page)
    # An independent decoder (ZXing) reads what a phone would.
    assert [found.text for found in zxingcpp.read_barcodes(qr)] == [VERIFY_URL]
    assert _is_a4_landscape(page)
    assert VERIFY_URL in page.extract_text()


def test_the_qr_code_drawn_is_segnos_symbol_of_the_url_module_for_module() -> None:
    page = _only_page(
        certificate_pdf.render(_certificate("Anna"), verify_url=VERIFY_URL, font=None)
    )
    symbol = certificate_pdf.verification_qr(VERIFY_URL)
    modules = symbol.symbol_size(border=certificate_pdf.QR_BORDER)[0]
    qr = _qr_image(page).convert("L")
    assert qr.width == qr.height
    assert qr.width % modules == 0
    # One sample from the middle of each module: dark (0) where segno's matrix is dark.
    pixel = qr.width // modules
    drawn = [
        [qr.getpixel((x * pixel + pixel // 2, y * pixel + pixel // 2)) == 0 for x in range(modules)]
        for y in range(modules)
    ]
    expected = [
        [bool(dark) for dark in row] for row in symbol.matrix_iter(border=certificate_pdf.QR_BORDER)
    ]
    assert drawn == expected


@pytest.mark.parametrize("font", [DEJAVU, None], ids=["dejavu", "core"])
def test_the_longest_name_and_title_still_fit_one_page_above_the_footer(
    font: Path | None,
) -> None:
    # The widest letters at the longest lengths accepted (name 200, title 300).
    certificate = replace(_certificate("W" * 200), seminar_title="W" * 300, display_name="W" * 200)
    page = _only_page(certificate_pdf.render(certificate, verify_url=VERIFY_URL, font=font))
    baselines_mm: list[tuple[str, float]] = []

    def note(text: str, _cm: object, tm: list[float], _font: object, _size: object) -> None:
        if text.strip():
            from_top = (float(page.mediabox.height) - tm[5]) / 72 * 25.4
            baselines_mm.append((text.strip(), from_top))

    page.extract_text(visitor_text=note)
    footer = [y for text, y in baselines_mm if text.startswith("Verif")]
    body = [y for text, y in baselines_mm if not text.startswith("Verif")]
    assert any(text.startswith("WWWWWWWWWWWW") for text, _ in baselines_mm)
    qr_top_mm = 210 - 15 - certificate_pdf.QR_SIDE_MM
    assert max(body) < qr_top_mm < min(footer)
    assert zxingcpp.read_barcodes(_qr_image(page))[0].text == VERIFY_URL


# ---- the calendar ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "previous", "cancelled", "shown"),
    [
        ("confirmed", None, None, False, EntryStatus.CONFIRMED),
        ("offered", None, None, False, EntryStatus.TENTATIVE),
        ("waitlisted", None, None, False, None),
        ("cancelled", "participant_request", None, False, None),
        ("rejected", "seminar_closed", None, False, None),
        ("cancelled", "seminar_cancelled", "confirmed", True, EntryStatus.CANCELLED),
        ("cancelled", "seminar_cancelled", "offered", True, EntryStatus.CANCELLED),
        ("cancelled", "seminar_cancelled", "waitlisted", True, None),
        # Cancelled before the previous status was kept: shown, cancelled.
        ("cancelled", "seminar_cancelled", None, True, EntryStatus.CANCELLED),
        ("confirmed", None, None, True, EntryStatus.CANCELLED),
    ],
)
def test_which_seminars_the_calendar_shows(
    status: str, reason: str | None, previous: str | None, cancelled: bool, shown: EntryStatus
) -> None:
    held = HeldRegistration("sem-1", status, reason=reason, previous_status=previous)
    facts = _facts(cancelled=cancelled)
    assert calendars.entry_status(held, facts) == shown


def test_seminars_without_known_sessions_are_left_out() -> None:
    held = [HeldRegistration("sem-1", "confirmed"), HeldRegistration("old", "confirmed")]
    shown = calendars.entries(held, {"sem-1": _facts(), "old": SeminarFacts("old")})
    assert [e.seminar.seminar_id for e in shown] == ["sem-1"]


def test_the_ics_reads_back_with_an_independent_parser() -> None:
    brussels = _facts("sem-1", reschedules=2)
    cancelled = _facts(
        "sem-2",
        title="Tokyo, again; later",
        timezone="Asia/Tokyo",
        sessions=(_session(20),),
        cancelled=True,
    )
    text = calendar_ics.render(
        [
            CalendarEntry(brussels, EntryStatus.CONFIRMED),
            CalendarEntry(cancelled, EntryStatus.CANCELLED),
        ],
        name="Seminars of anna",
        now=NOW,
    )
    parsed = read_calendar(text.decode())
    events = {e.uid.value: e for e in parsed.vevent_list}
    assert sorted(events) == ["sem-1-0@seminar-ops", "sem-1-1@seminar-ops", "sem-2-0@seminar-ops"]
    first = events["sem-1-0@seminar-ops"]
    # 15:00 UTC in May is 17:00 in Brussels (summer time), written in that zone.
    assert (first.dtstart.value.hour, first.dtstart.value.utcoffset()) == (17, timedelta(hours=2))
    assert first.dtstart.value.astimezone(UTC) == _session(4).starts_at
    assert "TZID=Europe/Brussels:20260504T170000" in text.decode()
    assert first.sequence.value == "2"
    assert first.status.value == "CONFIRMED"
    assert first.summary.value == "Coding in the classroom"
    tokyo = events["sem-2-0@seminar-ops"]
    assert tokyo.status.value == "CANCELLED"
    assert tokyo.sequence.value == "1"  # no reschedule, then cancelled
    assert tokyo.summary.value == "Tokyo, again; later"
    assert tokyo.dtstart.value.astimezone(UTC) == _session(20).starts_at
    assert {tz.tzid.value for tz in parsed.vtimezone_list} == {"Europe/Brussels", "Asia/Tokyo"}


def test_each_calendar_reads_back_with_its_own_time_zones() -> None:
    """A calendar of a later year read first must not decide how May 2026 reads: the
    second parser keeps time zones process-wide, and the tests run in random order."""
    later = replace(
        _facts("sem-9"),
        sessions=(
            Session(
                starts_at=datetime(2031, 1, 7, 15, tzinfo=UTC),
                ends_at=datetime(2031, 1, 7, 17, tzinfo=UTC),
            ),
        ),
    )
    read_calendar(
        calendar_ics.render([CalendarEntry(later, EntryStatus.CONFIRMED)], name="x", now=NOW)
    )
    text = calendar_ics.render([CalendarEntry(_facts(), EntryStatus.CONFIRMED)], name="x", now=NOW)
    start = read_calendar(text).vevent_list[0].dtstart.value
    assert (start.hour, start.utcoffset()) == (17, timedelta(hours=2))


def test_an_unknown_time_zone_is_written_in_utc() -> None:
    text = calendar_ics.render(
        [CalendarEntry(_facts(timezone="Mars/Olympus"), EntryStatus.CONFIRMED)],
        name="x",
        now=NOW,
    )
    parsed = read_calendar(text.decode())
    assert parsed.vevent_list[0].dtstart.value == _session(4).starts_at
