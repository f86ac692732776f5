"""A certificate of attendance as a one-page PDF, written with ``fpdf2``.

Names come from everywhere in Europe (Łukasiewicz, Παπαδοπούλου, Добре), which the
PDF core fonts (Latin-1) cannot show: a Unicode TrueType font is embedded when one is
configured (``REGISTRATION_CERTIFICATE_FONT``, by default DejaVu Sans where the system
has it: the deployment image installs it). Without one, the core font is used and what
it cannot show is written without accents, or as ``?``.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fpdf import FPDF

from .certificates import Certificate

MEDIA_TYPE = "application/pdf"
_FAMILY = "certificate"

_KINDS = {
    "learning_event": "Learning event",
    "online_seminar": "Online seminar",
    "pd_workshop": "Professional development workshop",
}
_PROGRAMMES = {"etwinning": "eTwinning", "etwinning_plus": "eTwinning Plus"}


def _latin1(text: str) -> str:
    """``text`` as the core fonts can show it: accents dropped, the rest as ``?``."""
    folded = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in folded if not unicodedata.combining(c))
    return kept.encode("latin-1", "replace").decode("latin-1")


def _zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _dates(certificate: Certificate) -> str | None:
    """The seminar's dates as its participants lived them (its own time zone)."""
    if certificate.starts_at is None or certificate.ends_at is None:
        return None
    zone = _zone(certificate.timezone)
    first = certificate.starts_at.astimezone(zone).date()
    last = certificate.ends_at.astimezone(zone).date()
    if first == last:
        return first.isoformat()
    return f"{first.isoformat()} to {last.isoformat()}"


def render(certificate: Certificate, *, verify_url: str, font: Path | None) -> bytes:
    """The certificate's PDF: the holder's name (their id if they gave none), the
    seminar, its dates and hours, and the verification code with where to check it."""
    name = certificate.display_name or certificate.participant_id
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_title(f"Certificate of attendance {certificate.code}")
    pdf.set_creator("seminar-ops registration service")
    # The issue time, not the rendering time: the same certificate, the same bytes.
    pdf.set_creation_date(certificate.issued_at.astimezone(UTC))
    unicode_font = font is not None and font.is_file()
    if unicode_font:
        assert font is not None
        pdf.add_font(_FAMILY, "", str(font))
    family = _FAMILY if unicode_font else "helvetica"

    def line(text: str, *, size: int, height: float) -> None:
        pdf.set_font(family, size=size)
        pdf.multi_cell(
            0,
            height,
            text if unicode_font else _latin1(text),
            align="C",
            new_x="LMARGIN",
            new_y="NEXT",
        )

    pdf.add_page()
    pdf.ln(18)
    line("Certificate of attendance", size=30, height=16)
    pdf.ln(8)
    line("This certifies that", size=14, height=9)
    line(name, size=26, height=14)
    line("attended", size=14, height=9)
    line(certificate.seminar_title or certificate.seminar_id, size=20, height=12)
    kind = _KINDS.get(certificate.kind, certificate.kind)
    programme = _PROGRAMMES.get(certificate.programme, certificate.programme)
    line(f"{kind}, {programme}", size=14, height=9)
    details = [d for d in (_dates(certificate),) if d]
    if certificate.hours is not None:
        details.append(f"{certificate.hours:g} hours")
    if details:
        line(" · ".join(details) if unicode_font else ", ".join(details), size=14, height=9)
    pdf.ln(14)
    line(f"Verification code: {certificate.code}", size=12, height=7)
    line(f"Verify at {verify_url}", size=10, height=6)
    return bytes(pdf.output())
