"""Where projections are folded: the interface the projector writes through, and an
in-memory implementation (the rebuild folds the whole event log in memory and writes
the result once; unit tests use it as the fake)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from .domain import (
    CertificateView,
    EvaluationView,
    ParticipationView,
    RegistrationView,
    SeminarView,
)


class ProjectionStore(Protocol):
    """The projection documents of one projection set, in one unit of work."""

    async def erased_among(self, anonymous_ids: Collection[str]) -> set[str]:
        """The pseudonyms among ``anonymous_ids`` whose person asked to be forgotten."""
        ...

    async def erase(self, *, participant_id: str, anonymous: str, erased_at: datetime) -> None:
        """Remember the erasure (by its anonymous id only) and replace the id where it is
        kept (evaluations; registrations and participations know people by pseudonym)."""
        ...

    async def seminar(self, seminar_id: str) -> SeminarView | None: ...

    async def save_seminar(self, view: SeminarView) -> None: ...

    async def registration(self, seminar_id: str, person: str) -> RegistrationView | None:
        """The registration of ``person`` (a pseudonym, ``Projector.person``) at
        ``seminar_id``: one per person and seminar, whatever its registration id."""
        ...

    async def save_registration(self, view: RegistrationView) -> None: ...

    async def participations(
        self, seminar_id: str, participant_ids: Collection[str]
    ) -> dict[str, ParticipationView]:
        """Participations of these people (pseudonyms) at a seminar, by person."""
        ...

    async def attendees(self, seminar_id: str) -> dict[str, ParticipationView]:
        """The participations of everyone who attended the seminar, by person."""
        ...

    async def save_participations(self, views: Sequence[ParticipationView]) -> None: ...

    async def evaluation(self, evaluation_id: str) -> EvaluationView | None: ...

    async def save_evaluation(self, view: EvaluationView) -> None: ...

    async def certificate(self, certificate_id: str) -> CertificateView | None: ...

    async def save_certificate(self, view: CertificateView) -> None: ...

    async def tally(self, seminar_id: str, change: Mapping[str, int]) -> None:
        """Move the seminar's counters by ``change`` (``domain.tally_change``)."""
        ...


class MemoryProjectionStore:
    """All projection documents in dictionaries, with the same semantics as the
    database store (keys, erasure) and an index by participant of the evaluations (the
    only views an erasure rewrites)."""

    def __init__(self) -> None:
        self.seminars: dict[str, SeminarView] = {}
        # (seminar, person) -> registration
        self.registrations: dict[tuple[str, str], RegistrationView] = {}
        self.participations_by_key: dict[tuple[str, str], ParticipationView] = {}
        self._by_seminar: dict[str, set[str]] = {}
        self.evaluations: dict[str, EvaluationView] = {}
        self.certificates: dict[str, CertificateView] = {}
        # anonymous id -> when the erasure happened
        self.erasures: dict[str, datetime] = {}
        # participant id -> ids of their evaluations
        self._of_person: dict[str, set[str]] = {}
        # seminar id -> counter -> value
        self.tallies: dict[str, dict[str, int]] = {}

    def _remember(self, participant_id: str | None, evaluation_id: str) -> None:
        if participant_id is not None:
            self._of_person.setdefault(participant_id, set()).add(evaluation_id)

    async def erased_among(self, anonymous_ids: Collection[str]) -> set[str]:
        return {a for a in anonymous_ids if a in self.erasures}

    async def erase(self, *, participant_id: str, anonymous: str, erased_at: datetime) -> None:
        self.erasures.setdefault(anonymous, erased_at)
        # Registrations and participations hold people by pseudonym only: nothing of
        # theirs to rewrite.
        for key in self._of_person.pop(participant_id, set()):
            evaluation = replace(self.evaluations[key], participant_id=anonymous)
            self.evaluations[key] = evaluation
            self._remember(anonymous, key)

    async def seminar(self, seminar_id: str) -> SeminarView | None:
        return self.seminars.get(seminar_id)

    async def save_seminar(self, view: SeminarView) -> None:
        self.seminars[view.seminar_id] = view

    async def registration(self, seminar_id: str, person: str) -> RegistrationView | None:
        return self.registrations.get((seminar_id, person))

    async def save_registration(self, view: RegistrationView) -> None:
        self.registrations[(view.seminar_id, view.participant_id)] = view

    async def participations(
        self, seminar_id: str, participant_ids: Collection[str]
    ) -> dict[str, ParticipationView]:
        found = {p: self.participations_by_key.get((seminar_id, p)) for p in participant_ids}
        return {p: view for p, view in found.items() if view is not None}

    async def attendees(self, seminar_id: str) -> dict[str, ParticipationView]:
        everyone = await self.participations(seminar_id, self._by_seminar.get(seminar_id, set()))
        return {p: view for p, view in everyone.items() if view.attended}

    async def save_participations(self, views: Sequence[ParticipationView]) -> None:
        for view in views:
            self.participations_by_key[(view.seminar_id, view.participant_id)] = view
            self._by_seminar.setdefault(view.seminar_id, set()).add(view.participant_id)

    async def evaluation(self, evaluation_id: str) -> EvaluationView | None:
        return self.evaluations.get(evaluation_id)

    async def save_evaluation(self, view: EvaluationView) -> None:
        self.evaluations[view.evaluation_id] = view
        self._remember(view.participant_id, view.evaluation_id)

    async def certificate(self, certificate_id: str) -> CertificateView | None:
        return self.certificates.get(certificate_id)

    async def save_certificate(self, view: CertificateView) -> None:
        self.certificates[view.certificate_id] = view

    async def tally(self, seminar_id: str, change: Mapping[str, int]) -> None:
        counters = self.tallies.setdefault(seminar_id, {})
        for key, n in change.items():
            counters[key] = counters.get(key, 0) + n
