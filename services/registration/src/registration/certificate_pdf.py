"""A certificate of attendance as a one-page PDF, written with ``fpdf2``.

Names come from everywhere in Europe (Łukasiewicz, Παπαδοπούλου, Добре), which the
PDF core fonts (Latin-1) cannot show: a Unicode TrueType font is embedded when one is
configured (``REGISTRATION_CERTIFICATE_FONT``, by default DejaVu Sans where the system
has it: the deployment image installs it). Without one, the core font is used and what
it cannot show is written without accents, or as ``?``.

The page is one A4 sheet (landscape) whatever the lengths of the name and the title: a
text that would run into the footer (the verification code, URL and QR code) is set
again in smaller type. The QR code (``segno``) holds the verification URL, so a phone
checks the paper at once; it is a raster of whole pixels per module, large enough to
stay sharp in print whether or not a viewer smooths images.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Iterator
from datetime import UTC, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import segno
from fpdf import FPDF

from .certificates import Certificate

MEDIA_TYPE = "application/pdf"
PAGE_FORMAT = "A4"
_FAMILY = "certificate"

# Landscape A4 in millimetres; the footer band at the bottom holds the verification
# code and URL (left) and the QR code (right).
_PAGE_W, _PAGE_H = 297.0, 210.0
_MARGIN = 15.0
QR_SIDE_MM = 36.0
_FOOTER_TOP = _PAGE_H - _MARGIN - QR_SIDE_MM
# Error correction M (15% of the symbol may be lost: a fold, a stain) and the standard
# quiet zone of four modules. Eight pixels per module: a 41-module symbol (the URLs
# here) is ~280 dpi at 36 mm.
QR_ERROR = "m"
QR_BORDER = 4
_QR_PIXELS_PER_MODULE = 8
# Smaller type, step by step, for names and titles too long for the body at full size.
_TYPE_SCALES = (1.0, 0.85, 0.7, 0.55, 0.45, 0.35)

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


def verification_qr(verify_url: str) -> segno.QRCode:
    """The QR code of the verification URL as the PDF draws it."""
    return segno.make(verify_url, error=QR_ERROR, micro=False)


def _qr_png(verify_url: str) -> io.BytesIO:
    png = io.BytesIO()
    verification_qr(verify_url).save(png, kind="png", scale=_QR_PIXELS_PER_MODULE, border=QR_BORDER)
    png.seek(0)
    return png


def _body_lines(certificate: Certificate, *, unicode_font: bool) -> Iterator[tuple[str, int]]:
    """The body as (text, size at full scale), top to bottom; ``""`` is a gap."""
    yield "Certificate of attendance", 30
    yield "", 8
    yield "This certifies that", 14
    yield certificate.display_name or certificate.participant_id, 26
    yield "attended", 14
    yield certificate.seminar_title or certificate.seminar_id, 20
    kind = _KINDS.get(certificate.kind, certificate.kind)
    programme = _PROGRAMMES.get(certificate.programme, certificate.programme)
    yield f"{kind}, {programme}", 14
    details = [d for d in (_dates(certificate),) if d]
    if certificate.hours is not None:
        details.append(f"{certificate.hours:g} hours")
    if details:
        yield (" · " if unicode_font else ", ").join(details), 14


def _attempt(certificate: Certificate, *, verify_url: str, font: Path | None, scale: float) -> FPDF:
    pdf = FPDF(orientation="landscape", format=PAGE_FORMAT, unit="mm")
    pdf.set_title(f"Certificate of attendance {certificate.code}")
    pdf.set_creator("seminar-ops registration service")
    # The issue time, not the rendering time: the same certificate, the same bytes.
    pdf.set_creation_date(certificate.issued_at.astimezone(UTC))
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    # The body may not enter the footer band: if it would, a second page starts, and
    # ``render`` tries again in smaller type.
    pdf.set_auto_page_break(auto=True, margin=_PAGE_H - _FOOTER_TOP + 4)
    unicode_font = font is not None and font.is_file()
    if unicode_font:
        assert font is not None
        pdf.add_font(_FAMILY, "", str(font))
    family = _FAMILY if unicode_font else "helvetica"

    def write(text: str, *, size: float, align: str = "C", width: float = 0) -> None:
        pdf.set_font(family, size=size)
        pdf.multi_cell(
            width,
            size * 0.5,
            text if unicode_font else _latin1(text),
            align=align,
            new_x="LMARGIN",
            new_y="NEXT",
        )

    pdf.add_page()
    pdf.ln(12 * scale)
    for text, size in _body_lines(certificate, unicode_font=unicode_font):
        if text:
            write(text, size=size * scale)
        else:
            pdf.ln(size * scale)

    pdf.set_auto_page_break(auto=False)
    qr_x = _PAGE_W - _MARGIN - QR_SIDE_MM
    pdf.image(
        _qr_png(verify_url),
        x=qr_x,
        y=_FOOTER_TOP,
        w=QR_SIDE_MM,
        h=QR_SIDE_MM,
        alt_text=f"QR code of {verify_url}",
    )
    pdf.set_y(_FOOTER_TOP + 10)
    footer_width = qr_x - _MARGIN - 6
    write(f"Verification code: {certificate.code}", size=12, align="L", width=footer_width)
    write(f"Verify at {verify_url}", size=10, align="L", width=footer_width)
    return pdf


def render(certificate: Certificate, *, verify_url: str, font: Path | None) -> bytes:
    """The certificate's PDF, one A4 page: the holder's name (their id if they gave
    none), the seminar, its dates and hours, the verification code, where to check it
    and the QR code of that URL."""
    for scale in _TYPE_SCALES:
        pdf = _attempt(certificate, verify_url=verify_url, font=font, scale=scale)
        if pdf.page_no() == 1:
            break
    # At the smallest type the longest name and title (200 and 300 characters) fit; the
    # last attempt stands in any case rather than refusing to certify.
    return bytes(pdf.output())
