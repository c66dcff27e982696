"""Indication pathways of 64580, and the sibling code a record's only indication points to.

CPT splits open array implantation by target: 64575 peripheral nerve, 64580 neuromuscular, 64581 sacral nerve,
64582 hypoglossal nerve. 64580 is ordered on three pathways, each with its own criteria (policy data):

- ``pain``: chronic pain treated through a neuromuscular target (the criteria payers write for PNS);
- ``restorative``: restorative stimulation of the lumbar multifidus (M62.85, FDA product code QLK): conservative
  care, not a spine-surgery candidate, evidence of multifidus dysfunction, no percutaneous trial;
- ``neuromuscular``: spasm, atrophy, and diaphragm (phrenic nerve) pacing per NCD 160.19.

The order's ``reasonCode`` decides when it names an indication; otherwise the record's active diagnoses do.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from cds import codes
from cds.orders import Order
from cds.records import PatientRecord

PAIN, RESTORATIVE, NEUROMUSCULAR = "pain", "restorative", "neuromuscular"
PATHWAYS = (PAIN, RESTORATIVE, NEUROMUSCULAR)
LABELS = {
    PAIN: "pain (chronic pain through a neuromuscular target)",
    RESTORATIVE: "restorative (lumbar multifidus dysfunction, M62.85)",
    NEUROMUSCULAR: "neuromuscular (spasm, atrophy, diaphragm pacing)",
}
# Value sets whose indication is treated with a sibling code, not 64580.
SIBLINGS: tuple[tuple[codes.ValueSet, str, str], ...] = (
    (codes.SLEEP_APNEA, "64582", "hypoglossal nerve stimulation"),
    (codes.SACRAL_INDICATION, "64581", "sacral nerve neuromodulation"),
)
NEUROMUSCULAR_TARGETS = (codes.INDICATION_NEUROMUSCULAR, codes.INDICATION_RESTORATIVE, codes.INDICATION_PHRENIC)


class Pathway(NamedTuple):
    """An order's indication pathway and why (a named tuple: made once an order)."""

    id: str
    why: str  # "the order's reason M62.85", "the record's active diagnoses"
    phrenic: bool = False  # diaphragm pacing, on the neuromuscular pathway

    @property
    def label(self) -> str:
        return LABELS[self.id]


def _in_reasons(order: Order, vs: codes.ValueSet) -> list[str]:
    return sorted(codes.published(system, code) for system, code in order.reasons if vs.matches(system, code))


def _active(record: PatientRecord, vs: codes.ValueSet, day: date) -> list[str]:
    """Active, confirmed diagnoses of ``vs`` by ``day``: a provisional diagnosis does not choose a pathway."""
    events = record.condition_events(vs)
    return sorted({e.shown for e in events if e.active and e.confirmed and (e.start is None or e.start <= day)})


def choose(record: PatientRecord, order: Order, day: date) -> Pathway:
    """The pathway of this order: its reasonCode first, then the record's active diagnoses."""
    reason = {
        RESTORATIVE: _in_reasons(order, codes.INDICATION_RESTORATIVE),
        "phrenic": _in_reasons(order, codes.INDICATION_PHRENIC),
        NEUROMUSCULAR: _in_reasons(order, codes.INDICATION_NEUROMUSCULAR),
        PAIN: _in_reasons(order, codes.INDICATION_PAIN),
    }
    if reason[RESTORATIVE]:
        return Pathway(RESTORATIVE, f"the order's reason {', '.join(reason[RESTORATIVE])}")
    if reason["phrenic"]:
        return Pathway(NEUROMUSCULAR, f"the order's reason {', '.join(reason['phrenic'])}", phrenic=True)
    if reason[NEUROMUSCULAR] and not reason[PAIN]:
        return Pathway(NEUROMUSCULAR, f"the order's reason {', '.join(reason[NEUROMUSCULAR])}")
    if reason[PAIN]:
        return Pathway(PAIN, f"the order's reason {', '.join(reason[PAIN])}")
    restorative = _active(record, codes.INDICATION_RESTORATIVE, day)
    if restorative:
        return Pathway(RESTORATIVE, f"the active diagnosis {', '.join(restorative)}")
    pain = _active(record, codes.INDICATION_PAIN, day)
    phrenic = _active(record, codes.INDICATION_PHRENIC, day)
    if phrenic and not pain:
        return Pathway(NEUROMUSCULAR, f"the active diagnosis {', '.join(phrenic)}", phrenic=True)
    neuromuscular = _active(record, codes.INDICATION_NEUROMUSCULAR, day)
    if neuromuscular and not pain:
        return Pathway(NEUROMUSCULAR, f"the active diagnosis {', '.join(neuromuscular)}")
    return Pathway(PAIN, f"the active diagnosis {', '.join(pain)}" if pain else "no indication documented")


def has_neuromuscular_target(record: PatientRecord, order: Order, day: date) -> bool:
    """A muscle or phrenic target in the order's reason or the record: what makes pain a 64580 matter."""
    return any(_in_reasons(order, vs) or _active(record, vs, day) for vs in NEUROMUSCULAR_TARGETS)


OWN_INDICATIONS = (codes.INDICATION_PAIN, *NEUROMUSCULAR_TARGETS)


def sibling(record: PatientRecord, order: Order, day: date) -> tuple[str, str, list[str]] | None:
    """(code, what it is, the diagnoses) when the record's indications belong to a sibling code's therapy.

    Never when the order's own reason names a 64580 indication: a comorbidity is not the indication.
    """
    if any(_in_reasons(order, vs) for vs in OWN_INDICATIONS):
        return None
    for vs, code, what in SIBLINGS:
        found = _in_reasons(order, vs) or _active(record, vs, day)
        if found:
            return code, what, found
    return None
