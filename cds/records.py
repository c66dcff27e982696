"""PatientRecord: the typed view of exactly what the 64580 rules read (:mod:`cds.fhirview`).

Resources are first filtered as plain dicts: Conditions, Procedures, medications and Observations are read only
when a code the rules use is on them, and other resource types are never read. A 5,000-resource record
therefore costs a few hundred small views, not 5,000 model validations.

Real data is messy, and none of it may crash a hook call: systems are normalised (:mod:`cds.codes`), Bundles are
flattened, contained Medications resolved, duplicates dropped (the newest ``meta.lastUpdated`` kept; versions that
cannot be ordered and disagree are evidence of nothing for certain), an element of the wrong type is read as absent, a
missing ``subject`` is the patient the call is about and a missing status on an event is "unknown" (such a
Procedure, medication or Observation is read, but no rule rests on it alone: the record does not say it happened).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from cds import codes, fhirview
from cds.codes import ValueSet
from cds.fhirvalues import (
    EARLIEST,
    array,
    as_date,
    codings_of,
    instant,
    ref_id,
    sites_of,
    split_reference,
    text_of,
    unnamed_labels,
)
from cds.fhirview import (
    Condition,
    Coverage,
    MedicationRequest,
    MedicationStatement,
    Observation,
    Organization,
    Patient,
    Practitioner,
    PractitionerRole,
    Procedure,
    QuestionnaireResponse,
)

if TYPE_CHECKING:
    from cds.orders import Order

log = logging.getLogger(__name__)

_IGNORED_STATUS = {"entered-in-error", "not-done", "cancelled", "refuted", "draft", "intended", "not-taken"}
_DONE_PROCEDURE = {"completed", "in-progress", "unknown"}
# FHIR R4's status "unknown" (Procedure, MedicationRequest, MedicationStatement, Observation): the source system
# does not know which status applies, not-done and entered-in-error included, so no rule may rest on such a
# record alone (see rules.evaluate); a missing status is read the same way
_UNSETTLED_KINDS = ("procedures", "medication_requests", "medication_statements", "observations")
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_ACTIVE_CONDITION = {"active", "recurrence", "relapse"}
_REFUTED_CONDITION = {"refuted", "entered-in-error"}  # never evidence of anything
_UNCONFIRMED_CONDITION = {"unconfirmed", "provisional", "differential"}  # evidence of nothing yet
_ONGOING_MEDICATION = {"active", "on-hold"}
_NOT_AN_ORDER = {"proposal", "plan"}  # a MedicationRequest that was suggested or planned was not tried
_UNMADE = object()  # a view not yet made (None may be one that was)
_THIRD = itemgetter(2)
_START = attrgetter("start")


class Event(NamedTuple):
    """One dated piece of evidence: what it is, where it is, when it happened. A named tuple, immutable as the frozen
    dataclass it was, made without ``object.__setattr__`` per field (a call makes dozens; each cost 2.6 µs)."""

    reference: str
    kind: str
    code: str
    start: date | None
    end: date | None = None
    status: str | None = None
    value: float | None = None
    active: bool = True
    performers: tuple[str, ...] = ()  # who did it (Procedure.performer.actor references)
    confirmed: bool = True  # a Condition whose verificationStatus is unconfirmed/provisional/differential is not
    display: str = ""  # what the record calls it (a drug's name, a procedure's text)
    sites: frozenset[tuple[str, str]] = frozenset()  # bodySite codings (system, code)
    ongoing: bool = False  # a medication still being taken (status active or on-hold)

    @property
    def shown(self) -> str:
        """The code as a clinician reads it: ICD-10-CM with its dot, and the record's name for it when it has one."""
        system = codes.ICD10CM if self.reference.startswith("Condition/") else None
        code = codes.published(system, self.code) if system else self.code
        return f"{code} \u2013 {self.display}" if self.display else code


class Surgeon(NamedTuple):
    """A performer on the order, with the surgical role read from PractitionerRole."""

    reference: str
    role: str  # "primary" | "assistant" | "unknown"
    non_physician: bool = False  # a PA, NP or clinical nurse specialist (assistant modifier AS)
    specialties: frozenset[str] = frozenset()

    @property
    def physician(self) -> bool:
        """A NUCC taxonomy of the Allopathic & Osteopathic Physicians group (codes starting 20)."""
        return any(s.startswith("20") for s in self.specialties)


@dataclass
class PatientRecord:
    patient_id: str | None = None
    patient: Patient | None = None
    conditions: list[Condition] = field(default_factory=list)
    procedures: list[Procedure] = field(default_factory=list)
    medication_requests: list[MedicationRequest] = field(default_factory=list)
    medication_statements: list[MedicationStatement] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    coverages: list[Coverage] = field(default_factory=list)
    organizations: dict[str, Organization] = field(default_factory=dict)
    practitioners: dict[str, Practitioner] = field(default_factory=dict)
    roles: dict[str, PractitionerRole] = field(default_factory=dict)
    questionnaire_responses: list[QuestionnaireResponse] = field(default_factory=list)  # attestations (DTR)
    unreadable: int = 0
    elsewhere: int = 0  # entries about another patient, left out (see :func:`_about_another`)
    # medication codes resolved while filtering (contained or separate Medication resources) and the class each
    # was found in there (codes.medication_class, read once), by resource ref
    _medication_concepts: dict[str, tuple[dict, tuple[str, str]]] = field(default_factory=dict, repr=False)
    # the codings of each Condition, Procedure and Observation as the relevance check read them, and what it
    # matched, by resource ref: the views read these rather than the codes again (the model is kept to tell that
    # the entry is for the model the list holds)
    _coded: dict[str, tuple[Any, list, tuple[str, str]]] = field(default_factory=dict, repr=False)
    # views already computed: several criteria read the same events (and indexes of roles and coverages)
    _views: dict[tuple[str, Any], Any] = field(default_factory=dict, repr=False)

    # ---- views the rules read -------------------------------------------------------------------------

    def _view(self, key: tuple[str, Any], build: Callable[..., Any], *args: Any) -> Any:
        """What ``build(*args)`` derives from this record, made once: every order of a call reads the same views.
        A method and its arguments rather than a closure: most reads find the view made, and a closure was made
        (and dropped) on each."""
        found = self._views.get(key, _UNMADE)
        if found is _UNMADE:
            found = self._views[key] = build(*args)
        return found

    def condition_events(self, value_set: ValueSet) -> list[Event]:
        """A view found made is read here, without the call to :meth:`_view`: every diagnosis criterion asks."""
        key = ("condition", value_set.id)
        found = self._views.get(key, _UNMADE)
        return self._view(key, self._condition_events, value_set) if found is _UNMADE else found

    def unsettled(self) -> tuple[str, ...]:
        """References of the Procedures, medications and Observations whose status is unknown: the record does
        not say whether they happened."""
        return self._view(("unsettled", ""), self._read_unsettled)

    def _read_unsettled(self) -> tuple[str, ...]:
        # the status compared inline and a list made at once: this runs over every event of every call
        return tuple(
            [
                f"{type(r).__name__}/{r.id}"
                for kind in _UNSETTLED_KINDS
                for r in getattr(self, kind)
                if r.status == "unknown"
            ]
        )

    def without_unsettled(self) -> PatientRecord:
        """The same record without what :meth:`unsettled` names: what it says for certain."""
        kept = {kind: [r for r in getattr(self, kind) if r.status != "unknown"] for kind in _UNSETTLED_KINDS}
        return replace(self, **kept, _views={})

    def procedure_events(self, value_set: ValueSet) -> list[Event]:
        """As :meth:`condition_events`: a view found made is read here."""
        key = ("procedure", value_set.id)
        found = self._views.get(key, _UNMADE)
        return self._view(key, self._procedure_events, value_set) if found is _UNMADE else found

    def _condition_events(self, value_set: ValueSet) -> list[Event]:
        events = []
        coded = self._coded
        for c in self.conditions:
            reference = f"Condition/{c.id}"
            known = coded.get(reference)
            hit = value_set.match_codings(known[1] if known is not None and known[0] is c else codings_of(c.code))
            if not hit:
                continue
            verification = _status_code(c.verificationStatus, _VERIFICATION)
            if verification in _REFUTED_CONDITION:
                continue
            clinical = _status_code(c.clinicalStatus, _CLINICAL)
            start = as_date(c.onsetDateTime) or (as_date(c.onsetPeriod.start) if c.onsetPeriod else None)
            abated = as_date(c.abatementDateTime)
            events.append(
                Event(
                    reference=reference,
                    kind=value_set.id,
                    code=f"{hit[1]}",
                    start=start or as_date(c.recordedDate),
                    end=abated,
                    status=clinical,
                    # without a clinical status, an abatement date says it is over (FHIR con-4)
                    active=clinical in _ACTIVE_CONDITION if clinical else abated is None,
                    confirmed=verification not in _UNCONFIRMED_CONDITION,
                    display=_label(c.code),
                )
            )
        return events

    def _procedure_events(self, value_set: ValueSet) -> list[Event]:
        done, distinct = self._view(("done-procedures", ""), self._read_done_procedures)
        # matched once per distinct list of codings: a record repeats a few codes (every session of therapy)
        hits = [value_set.match_codings(codings) for codings in distinct]
        if not any(hits):  # most value sets: none of the record's procedures
            return []
        return [
            Event(reference, value_set.id, hit[1], start, end, status, performers=actors, display=text, sites=sites)
            for place, reference, start, end, status, actors, text, sites in done
            if (hit := hits[place])
        ]

    def _read_done_procedures(self) -> tuple[list[tuple], tuple[tuple, ...]]:
        """Each done Procedure read once, in time order (undated last): what its events carry whatever the value
        set, its codings by their place among the distinct lists of codings (also given). Half a dozen value sets
        are matched against it per call, each a filter of this: a place is an index, where a list of codings as a
        dict key was hashed again, nested tuples and all, for every procedure and value set. A view of its own
        (``done-procedures``), read by :meth:`_procedure_events`."""
        done = []
        coded = self._coded
        for p in self.procedures:
            if p.status not in _DONE_PROCEDURE:
                continue
            start, end, _backwards = _span(p.performedDateTime, p.performedPeriod)
            actors = tuple([a.actor.reference for a in p.performer if a.actor and a.actor.reference])
            reference = f"Procedure/{p.id}"
            known = coded.get(reference)
            codings = tuple(known[1] if known is not None and known[0] is p else codings_of(p.code))
            done.append(
                (codings, reference, start, end or start, p.status, actors, text_of(p.code), sites_of(p.bodySite))
            )
        # sorted once: a stable sort, so each value set's filter keeps the order sorting its own events gave; dated
        # ones by date, undated ones last (the key read in C: a Python key was called for every procedure)
        dated = [d for d in done if d[2] is not None]
        dated.sort(key=_THIRD)
        done = dated + [d for d in done if d[2] is None]
        places: dict[tuple, int] = {}
        done = [(places.setdefault(d[0], len(places)), *d[1:]) for d in done]
        return done, tuple(places)

    def medication_events(self) -> list[Event]:
        """Every order's medication criterion reads these: built once per record (50 orders re-classified 20,000
        prescriptions 50 times, 20 s of CPU in one call)."""
        return self._view(("medication", ""), self._medication_events)

    def _medication_events(self) -> list[Event]:
        events = []
        for m in self.medication_requests:
            if m.status in _IGNORED_STATUS or m.intent in _NOT_AN_ORDER:
                continue
            start, end, backwards = _span(None, m.dispenseRequest.validityPeriod if m.dispenseRequest else None)
            start = start or as_date(m.authoredOn)
            events.extend(self._medication_event("MedicationRequest", m, start, end, not backwards))
        for s in self.medication_statements:
            if s.status in _IGNORED_STATUS:
                continue
            start, end, backwards = _span(s.effectiveDateTime, s.effectivePeriod)
            start = start or as_date(s.dateAsserted)
            events.extend(self._medication_event("MedicationStatement", s, start, end, not backwards))
        return events

    def _medication_event(
        self, kind: str, m, start: date | None, end: date | None, dated: bool = True
    ) -> Iterator[Event]:
        """``dated``: False when the period ends before it starts, so the course is not read as still running
        (an "active" course from 2020 with such a period counted as taken up to the order)."""
        reference = f"{kind}/{m.id}"
        known = self._medication_concepts.get(reference)
        if known:
            concept, found = known
            yield Event(
                reference,
                found[0],
                found[1],
                start,
                end,
                m.status,
                display=_name(concept) or found[1],
                ongoing=dated and m.status in _ONGOING_MEDICATION,
            )

    def pain_scores(self) -> list[Event]:
        """Pain scores on the 0-10 scale both codes are (a value off it is an entry error, never a score)."""
        return self._view(("pain", ""), self._read_pain)[0]

    def off_scale_pain(self) -> list[Event]:
        """Pain readings whose value is off the 0-10 scale: not used, but named where they would have counted."""
        return self._view(("pain", ""), self._read_pain)[1]

    def _read_pain(self) -> tuple[list[Event], list[Event]]:
        """(the readings on the 0-10 scale, those off it), each in time order."""
        events = []
        coded = self._coded
        for o in self.observations:
            if o.status in _IGNORED_STATUS:
                continue
            value = o.valueQuantity.value if o.valueQuantity else o.valueInteger
            when = as_date(o.effectiveDateTime) or (as_date(o.effectivePeriod.start) if o.effectivePeriod else None)
            when = when or as_date(o.issued)
            if value is None or when is None:
                continue
            reference = f"Observation/{o.id}"
            known = coded.get(reference)  # build read it only if its code is a pain score's: what matched is kept
            if known is not None and known[0] is o:
                hit = known[2]
            else:  # a record build did not make
                hit = codes.PAIN_SCORE.match_codings(codings_of(o.code))
            code = hit[1] if hit else "72514-3"
            events.append(Event(reference, "pain-score", code, when, when, o.status, float(value)))
        events.sort(key=_START)
        return [e for e in events if 0 <= e.value <= 10], [e for e in events if not 0 <= e.value <= 10]

    def surgeons(self, order: Order) -> list[Surgeon]:
        """The order's performers with their roles; one entry per practitioner even if listed twice. Read once per
        list of performers: the co-surgeon and the assistant criteria of every order both ask."""
        key = ("surgeons", order.performers, order.contained_roles and order.id)  # contained roles are the order's
        return list(self._view(key, self._surgeons, order))

    def _surgeons(self, order: Order) -> list[Surgeon]:
        seen: set[str] = set()
        surgeons = []
        for ref in order.performers:
            kind, ident = split_reference(ref)
            if kind not in ("PractitionerRole", "Practitioner"):
                continue  # an Organization or CareTeam is not a surgeon
            role = self._role_of(ref, order)  # looked up once: who the performer is and their role both read it
            identity = _person(ref, kind, ident, role)
            if identity in seen:
                continue
            seen.add(identity)
            surgeons.append(_surgeon(ref, role))
        return surgeons

    def person(self, reference: str, order: Order | None = None) -> str:
        """The practitioner behind a Practitioner or PractitionerRole reference (the reference itself if unknown);
        ``order`` resolves the roles it contains (``PractitionerRole/#r1``)."""
        kind, ident = split_reference(reference)
        role = self._role_of(reference, order) if kind == "PractitionerRole" else None
        return _person(reference, kind, ident, role)

    def _role_of(self, reference: str, order: Order | None = None) -> PractitionerRole | None:
        kind, ident = split_reference(reference)
        if ident.startswith("#"):  # contained in the order: never looked up among the record's resources
            if order is None:
                return None
            by_reference, by_practitioner = order.contained_index
            return (by_reference if kind == "PractitionerRole" else by_practitioner).get(ident)
        if kind == "PractitionerRole":
            return self.roles.get(ident)
        return self.role_of_practitioner(ident)

    def role_of_practitioner(self, ident: str) -> PractitionerRole | None:
        """The first PractitionerRole of Practitioner/``ident``, from an index built once per record: an order may
        name thousands of performers against thousands of roles (a scan each took minutes)."""
        roles = (r for r in self.roles.values() if r.practitioner)
        return self._first_by("roles-by-practitioner", roles, lambda r: ref_id(r.practitioner.reference)).get(ident)

    def coverage(self, ident: str) -> Coverage | None:
        """The first Coverage with id ``ident`` (indexed once: an order may name thousands of insurances)."""
        return self._first_by("coverage-by-id", self.coverages, lambda c: c.id).get(ident)

    def _first_by(self, name: str, items: Iterable, key: Callable) -> dict:
        """``items`` indexed by ``key`` (the first of each), built once per record."""

        def index() -> dict:
            found: dict = {}
            for item in items:
                found.setdefault(key(item), item)
            return found

        return self._view((name, ""), index)

    def payor_organization(self, coverage: Coverage) -> Organization | None:
        """The payor Organization of a Coverage: contained in it, or elsewhere in the record."""
        for payor in coverage.payor or ():
            reference = payor.reference or ""
            if reference.startswith("#"):
                for contained in coverage.contained:
                    if contained.id == reference[1:]:
                        return contained
            elif reference:
                found = self.organizations.get(ref_id(reference))
                if found is not None:
                    return found
        return None


# ---- building ---------------------------------------------------------------------------------------------


def build(resources: Iterable[dict], patient_id: str | None = None) -> PatientRecord:
    """Build the record from prefetched and fetched resources alike (Bundles are flattened)."""
    record = PatientRecord(patient_id=patient_id)
    kept: dict[tuple[str, str], dict] = {}
    anonymous: list[dict] = []
    medications: dict[str, dict] = {}
    for resource in _flatten(resources):
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str) or rtype not in _READ:
            if rtype == "Medication" and isinstance(resource.get("id"), str):
                medications[resource["id"]] = resource
            continue
        rid = resource.get("id")
        if not isinstance(rid, str) or not rid:
            anonymous.append(resource)
            continue
        key = (rtype, rid)
        if key not in kept or _newer(resource, kept[key]):
            kept[key] = resource
        elif not _newer(kept[key], resource):  # two versions the record gives no order for
            kept[key] = _undecided(kept[key], resource)

    labels: dict[str, Iterator[str]] = {}  # per kind, made on the first entry without an id (rare)
    own = f"Patient/{patient_id}"  # the subject of an entry about this patient, as it is usually written
    for resource in [*kept.values(), *anonymous]:
        rtype = resource["resourceType"]
        read, relevant, whose, listed = _KINDS[rtype]
        concept = found = pairs = None
        if rtype in _MEDICATION_KINDS:
            concept = _medication_concept(resource, medications)
            found = codes.medication_class(concept) if concept is not None else None
            if found is None:
                continue
        elif relevant is not None:
            pairs = codes.codings(resource.get("code"))
            found = relevant.match_codings(pairs)
            if found is None:
                continue
        try:
            model = read(resource, patient_id)
        except (TypeError, ValueError, AttributeError, OverflowError):  # reading it failed outright
            record.unreadable += 1
            continue
        subject = getattr(model, whose) if whose and patient_id else None
        if subject is not None and subject.reference != own and _about_another(subject, patient_id):
            record.elsewhere += 1
            continue
        if not model.id and rtype in _EVIDENCE_KINDS:
            if rtype not in labels:
                labels[rtype] = unnamed_labels({rid for t, rid in kept if t == rtype})
            model = model._replace(id=next(labels[rtype]))
        if concept is not None:
            record._medication_concepts[f"{rtype}/{model.id}"] = (concept, found)
        elif pairs is not None:
            record._coded[f"{rtype}/{model.id}"] = (model, pairs, found)
        if listed:
            getattr(record, listed).append(model)
        else:
            _add(record, rtype, model)
    if record.unreadable:
        log.info("record: %d resources could not be read and were left out", record.unreadable)
    if record.elsewhere:
        log.warning("record: %d resources about another patient were left out", record.elsewhere)
    return record


def _about_another(subject: fhirview.Reference, patient_id: str) -> bool:
    """Whether an entry's subject (beneficiary for Coverage) names another patient: a prefetch or search that returns
    one is wrong, and its therapy, diagnosis or attestation is not this patient's. A reference that names no patient
    id (``urn:uuid:``, ``#contained``, a Group) is not judged. (``build`` has already seen that it is not the usual
    ``Patient/{patient_id}``; a Patient about another is told by its id, in :func:`_add`.)"""
    if not subject.reference:
        return False
    kind, ident = split_reference(subject.reference)
    return kind == "Patient" and ident != patient_id


def _flatten(resources: Iterable[dict]) -> list[dict]:
    """Resources, with Bundles (nested ones too) opened in place; iterative, so no nesting depth can exhaust the
    stack. A list, made in one pass: a generator was resumed for every resource of every call."""
    flat: list[dict] = []
    stack = [iter(resources)]
    while stack:
        for resource in stack[-1]:  # an entry with no resource is None: skipped
            if not isinstance(resource, dict):
                continue
            if resource.get("resourceType") != "Bundle":
                flat.append(resource)
                continue
            entries = resource.get("entry")
            if isinstance(entries, list):
                stack.append(iter([e.get("resource") for e in entries if isinstance(e, dict)]))
                break  # the Bundle's entries first, then on from the entry after it
        else:
            stack.pop()  # this level is done
    return flat


def _newer(candidate: dict, current: dict) -> bool:
    """Whether ``candidate``'s ``meta.lastUpdated`` is the later instant (one without a readable stamp is oldest).
    Compared as instants: as text, "2026-01-01T09:00:00+05:00" sorted after "2026-01-01T08:00:00Z", which is later."""

    def stamp(r: dict) -> datetime:
        meta = r.get("meta")
        return instant(meta.get("lastUpdated") if isinstance(meta, dict) else None) or EARLIEST

    return stamp(candidate) > stamp(current)


_STATUS_KINDS = frozenset({"Procedure", "MedicationRequest", "MedicationStatement", "Observation"})


def _undecided(first: dict, second: dict) -> dict:
    """Two versions of one resource with the same ``meta.lastUpdated`` (or none) that disagree on whether it
    happened, or on the diagnosis: which is current cannot be told, so neither is evidence for certain. An event
    becomes status ``unknown`` (a finding it decides says "only if ... happened; verify"), a diagnosis
    ``unconfirmed``. Keeping the first, as before, counted a procedure its second version marked entered-in-error."""
    rtype = first["resourceType"]
    if rtype in _STATUS_KINDS and _contradict(_happened(rtype, first), _happened(rtype, second)):
        return {**first, "status": "unknown"}
    if rtype == "Condition" and any(map(_contradict, _diagnosis(first), _diagnosis(second))):
        disputed = {"coding": [{"system": _VERIFICATION, "code": "unconfirmed"}], "text": "two versions disagree"}
        return {**first, "verificationStatus": disputed}
    return first


def _contradict(a: object, b: object) -> bool:
    """Two readings that both say something, and not the same thing (a version that says nothing is no dispute)."""
    return a is not None and b is not None and a != b


def _happened(rtype: str, resource: dict) -> bool | None:
    """What a status says of an event as the rules read it: done (True), not done (False), nothing (None)."""
    status = resource.get("status")
    if not isinstance(status, str) or status == "unknown":
        return None
    return status in _DONE_PROCEDURE if rtype == "Procedure" else status not in _IGNORED_STATUS


def _diagnosis(resource: dict) -> tuple[str, bool | None]:
    """What a Condition's statuses say as the rules read them: refuted, unconfirmed or confirmed (no verification
    status is confirmed), and active or not (None when no clinical status is given)."""
    verification = _status_in(codes.codings(resource.get("verificationStatus")), _VERIFICATION)
    clinical = _status_in(codes.codings(resource.get("clinicalStatus")), _CLINICAL)
    said = (
        "refuted"
        if verification in _REFUTED_CONDITION
        else "unconfirmed"
        if verification in _UNCONFIRMED_CONDITION
        else "confirmed"
    )
    return said, (clinical in _ACTIVE_CONDITION) if clinical else None


def _medication_concept(resource: dict, medications: dict[str, dict]) -> dict | None:
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept
    reference = resource.get("medicationReference")
    ref = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(ref, str):
        return None
    if ref.startswith("#"):
        contained = next(
            (c for c in array(resource.get("contained")) if isinstance(c, dict) and c.get("id") == ref[1:]), None
        )
        medication = contained
    else:
        medication = medications.get(ref_id(ref))
    code = medication.get("code") if isinstance(medication, dict) else None
    if isinstance(code, dict):
        return code
    display = reference.get("display")
    return {"text": display} if isinstance(display, str) else None


class _Kind(NamedTuple):
    """How :func:`build` reads entries of one resource type, looked up once per entry (the type was compared again
    in each of five helpers)."""

    read: Callable[[dict, str | None], Any]  # its fhirview builder
    relevant: ValueSet | None  # read only when its code is in this set
    whose: str | None  # the element naming the patient it is about
    listed: str | None  # the record's list it goes in (else see _add)


# The kinds read only when their code is one the rules use, and the value set saying which.
_RELEVANT_CODES = {
    "Condition": codes.RELEVANT_CONDITION,
    "Procedure": codes.RELEVANT_PROCEDURE,
    "Observation": codes.PAIN_SCORE,
}
_LISTED = {
    "Condition": "conditions",
    "Procedure": "procedures",
    "MedicationRequest": "medication_requests",
    "MedicationStatement": "medication_statements",
    "Observation": "observations",
    "Coverage": "coverages",
    "QuestionnaireResponse": "questionnaire_responses",
}
_BY_ID = {"Organization": "organizations", "Practitioner": "practitioners", "PractitionerRole": "roles"}
_WHOSE = {"Coverage": "beneficiary"} | dict.fromkeys(
    ("Condition", "Procedure", "MedicationRequest", "MedicationStatement", "Observation", "QuestionnaireResponse"),
    "subject",
)
_KINDS = {
    rtype: _Kind(
        read,
        _RELEVANT_CODES.get(rtype),
        _WHOSE.get(rtype),
        _LISTED.get(rtype),
    )
    for rtype, read in fhirview.BUILDERS.items()
}
_MEDICATION_KINDS = ("MedicationRequest", "MedicationStatement")
_READ = frozenset(_KINDS) - {"ServiceRequest"}  # the order is read apart (cds.orders), never as the record's


def _add(record: PatientRecord, rtype: str, model) -> None:
    """A kind the record keeps by id (the last of an id wins), or the Patient: the first, or the one the call is
    about (one whose id names another patient is counted as such and left out)."""
    if rtype == "Patient":
        if record.patient_id and model.id and model.id != record.patient_id:
            record.elsewhere += 1
        elif record.patient is None or model.id == record.patient_id:
            record.patient = model
    elif model.id:
        getattr(record, _BY_ID[rtype])[model.id] = model


# ---- small helpers ----------------------------------------------------------------------------------------


# Kinds the rules cite as evidence: one without an id is still counted, under a label of its own (see unnamed_id).
_EVIDENCE_KINDS = frozenset(
    {"Condition", "Procedure", "MedicationRequest", "MedicationStatement", "Observation", "QuestionnaireResponse"}
)


def _span(when: object, period) -> tuple[date | None, date | None, bool]:
    """(start, end, whether the period ends before its start). Such a period breaks FHIR's per-1: the start is
    read, the end is not (how long it lasted is unknown), and a course with one is never read as still running."""
    if when is not None:
        d = as_date(when)
        return d, d, False
    if period is not None:
        start, end = as_date(period.start), as_date(period.end)
        backwards = bool(start and end and end < start)
        return start, None if backwards else end, backwards
    return None, None, False


def _label(concept) -> str:
    """What the record calls a coded thing: the concept's text, else its first coding's display."""
    if concept is None:
        return ""
    if concept.text and concept.text.strip():
        return concept.text.strip()
    return next((c.display.strip() for c in concept.coding or () if c.display and c.display.strip()), "")


def _name(concept: dict) -> str:
    """A medication's name as the record writes it: the concept's text, else its first display."""
    text = concept.get("text")
    if isinstance(text, str) and text.strip():
        return text.strip()
    return next(
        (
            c["display"].strip()
            for c in array(concept.get("coding"))
            if isinstance(c, dict) and isinstance(c.get("display"), str) and c["display"].strip()
        ),
        "",
    )


def _status_code(concept, system: str) -> str | None:
    """The code of the coding in ``system`` (HL7's status code system), else the first code: an EHR may put its
    local code first, and ``entered-in-error`` second must still take the diagnosis out."""
    return _status_in(codings_of(concept), system)


def _status_in(pairs: Iterable[tuple[str | None, str | None]], system: str) -> str | None:
    """:func:`_status_code` of (system, code) pairs, read from the typed view or still in JSON."""
    codings = [(s, c) for s, c in pairs if isinstance(c, str) and c]
    return next((c for s, c in codings if s == system), codings[0][1] if codings else None)


def _person(reference: str, kind: str, ident: str, role: PractitionerRole | None) -> str:
    """:meth:`PatientRecord.person` of a reference already split, with its role (None for a Practitioner)."""
    if kind == "Practitioner":
        return f"Practitioner/{ident}"
    if role is not None and role.practitioner and role.practitioner.reference:
        return f"Practitioner/{ref_id(role.practitioner.reference)}"
    return reference


def _surgeon(reference: str, role: PractitionerRole | None) -> Surgeon:
    if role is None:
        return Surgeon(reference, "unknown")
    kind = "unknown"
    for concept in role.code or ():
        for system, code in codings_of(concept):
            if system == codes.SURGICAL_ROLE:
                kind = "assistant" if code == "assistant-surgeon" else "primary"
            elif system == codes.V3_PARTICIPATION and code in ("PPRF", "SPRF"):
                kind = "primary" if code == "PPRF" else "assistant"
        if kind == "unknown":
            text = " ".join([concept.text or "", *((c.display or "") for c in concept.coding or ())]).lower()
            if "assist" in text:
                kind = "assistant"
            elif "surgeon" in text:
                kind = "primary"
    specialties = set()
    for concept in role.specialty or ():
        for system, code in codings_of(concept):
            system, code = codes.canonical(system, code)
            if system == codes.NUCC and code:
                specialties.add(code)
    non_physician = any(codes.NON_PHYSICIAN_ASSISTANT.matches(codes.NUCC, s) for s in specialties)
    return Surgeon(reference, kind, non_physician, frozenset(specialties))
