#!/usr/bin/env python3
"""Check a (generated) SOR XML v2.0.0 export: structure, identifiers, shape.

    .venv/bin/python bench/check_sor_export.py FILE.xml

Streams the file with lxml's iterparse and checks every SOR code (shape, Verhoeff, unique),
CVR (python-stdnum), GLN (13 digits, GS1 check), SHAK (shape, first 4 = the hospital),
ydernummer shape, name length, status dates and Replaces/ReplacedBy targets. Prints counts
per level, OE depth histogram and the other figures; exits 1 on the first kind of error.
"""

from __future__ import annotations

import collections
import re
import sys

from lxml import etree
from stdnum import ean, verhoeff
from stdnum.dk import cvr as stdcvr

V2 = "{urn:oio:nsi:2.0.0}"
S1 = "{urn:oio:sundhedsstyrelsen:organisation:1.0.0}"
CVRNS = "{http://rep.oio.dk/cvr.dk/xml/schemas/2005/03/22/}"
CPR = "{http://rep.oio.dk/cpr.dk/xml/schemas/core/2005/03/18/}"
KMS = "{http://rep.oio.dk/kms.dk/xml/schemas/2007/05/23/}"

SOR_RE = re.compile(r"^[1-9][0-9]{0,7}100001600[0-9]$")
SHAK_H = re.compile(r"^\d{4}$")
SHAK_D = re.compile(r"^\d{4}[0-9A-Z]\d$")
SHAK_S = re.compile(r"^\d{4}[0-9A-Z]\d[0-9A-Z]$")
YDER_RE = re.compile(r"^(\d{6}|99\d{6})$")
LEVEL = {V2 + "InstitutionOwner": "IE", V2 + "HealthInstitution": "SI",
         V2 + "OrganizationalUnit": "OE"}


def check(path: str) -> int:
    errors: collections.Counter[str] = collections.Counter()
    examples: dict[str, str] = {}

    def err(kind: str, detail: str) -> None:
        errors[kind] += 1
        examples.setdefault(kind, detail)

    counts: collections.Counter[str] = collections.Counter()
    depth_hist: collections.Counter[int] = collections.Counter()
    codes: set[str] = set()
    cvrs: set[str] = set()
    glns: set[str] = set()
    refs: list[str] = []
    yder: collections.Counter[str] = collections.Counter()
    owner_types: collections.Counter[str] = collections.Counter()
    figures: collections.Counter[str] = collections.Counter()
    hospital_shak: str | None = None
    oe_depth = 0

    for event, el in etree.iterparse(path, events=("start", "end")):
        tag = el.tag
        if event == "start":
            if tag == V2 + "OrganizationalUnitEntity":
                oe_depth += 1
            continue
        if tag == V2 + "OrganizationalUnitEntity":
            oe_depth -= 1
            el.clear()
            continue
        level = LEVEL.get(tag)
        if level is None:
            if tag in (V2 + "HealthInstitutionEntity", V2 + "InstitutionOwnerEntity"):
                el.clear()
            continue
        counts[level] += 1
        code = el.findtext(S1 + "SorIdentifier") or ""
        if not SOR_RE.match(code):
            err("sor shape", code)
        elif not verhoeff.is_valid(code):
            err("sor verhoeff", code)
        if code in codes:
            err("sor duplicate", code)
        codes.add(code)
        name = el.findtext(S1 + "EntityName") or ""
        if not name or len(name) > 60:
            err("name length", name)
        etype = el.findtext(V2 + "EntityTypeIdentifier")
        if not etype:
            err("no entity type", code)
        for g in el.iter(S1 + "EanLocationCode"):
            v = g.text or ""
            if len(v) != 13 or not v.startswith("579") or not ean.is_valid(v):
                err("gln", v)
            if v in glns:
                err("gln duplicate", v)
            glns.add(v)
        if level == "IE":
            owner_types[etype or ""] += 1
            c = el.findtext(CVRNS + "CVRnumberIdentifier")
            if c is None or not stdcvr.is_valid(c):
                err("cvr", str(c))
            elif c in cvrs:
                err("cvr duplicate", c)
            else:
                cvrs.add(c)
        else:
            if level == "OE":
                depth_hist[oe_depth] += 1
            shak = el.findtext(S1 + "ShakIdentifier")
            if shak:
                figures["with SHAK"] += 1
                if level == "SI":
                    if not SHAK_H.match(shak):
                        err("shak hospital shape", shak)
                    hospital_shak = shak
                elif not (SHAK_D.match(shak) or SHAK_S.match(shak)):
                    err("shak department/section shape", shak)
                elif shak[:4] != hospital_shak:
                    err("shak not under its hospital", f"{shak} under {hospital_shak}")
            elif level == "SI":
                hospital_shak = None
            y = el.findtext(S1 + "ProviderIdentifier")
            if y is not None:
                figures["with ydernummer"] += 1
                yder[y] += 1
                if not YDER_RE.match(y):
                    err("ydernummer shape", y)
            if el.find(V2 + "PostalAddressInformation") is None:
                figures[f"{level} without postal address"] += 1
            if el.find(S1 + "VirtualAddressInformation") is None:
                figures[f"{level} without phone/email/web"] += 1
            if el.find(V2 + "VisitingAddressInformation") is not None:
                figures[f"{level} with visiting address"] += 1
            if el.find(V2 + "ClinicalSpecialityCollection") is not None:
                figures["with clinical specialities"] += 1
        pa = el.find(V2 + "PostalAddressInformation")
        if pa is not None:
            mc = pa.findtext(CPR + "MunicipalityCode")
            rc = pa.findtext(KMS + "RegionCode")
            if mc is None:
                figures["addresses without kommunekode"] += 1
            elif not re.match(r"^0\d{3}$", mc):
                err("kommunekode", mc)
            if rc is not None and rc not in ("1081", "1082", "1083", "1084", "1085"):
                err("region code", rc)
        st = el.find(S1 + "SorStatus")
        if st is None:
            err("no SorStatus", code)
        else:
            first = st.findtext(S1 + "FirstFromDate") or ""
            from_ = st.findtext(S1 + "FromDate") or ""
            to = st.findtext(S1 + "ToDate")
            if not first or not from_ or first > from_:
                err("dates first>from", f"{code} {first} {from_}")
            if to is not None:
                figures["closed (ToDate)"] += 1
                if to < from_:
                    err("dates to<from", f"{code} {from_} {to}")
        for coll in ("ReplacesEntityCollection", "ReplacedByEntityCollection"):
            c = el.find(V2 + coll)
            if c is not None:
                figures[coll] += 1
                refs.extend(x.text or "" for x in c.iter(S1 + "SorIdentifier"))
    for r in refs:
        if r not in codes:
            figures["replace references outside the file"] += 1

    total = sum(counts.values())
    print(f"{path}: {total} entities  IE {counts['IE']}  SI {counts['SI']}  OE {counts['OE']}")
    names = {"550881000005103": "region", "547211000005108": "kommune",
             "398070004": "stat", "550891000005100": "privat"}
    print("  owners: " + ", ".join(f"{names.get(k, k)} {v}" for k, v in owner_types.items()))
    print("  OE depth: " + ", ".join(f"{d}: {n}" for d, n in sorted(depth_hist.items())))
    dup = sum(1 for n in yder.values() if n > 1)
    print(f"  ydernumre: {len(yder)} distinct, {dup} on more than one entity, "
          f"{sum(1 for y in yder if len(y) == 8)} with 99-prefix")
    print(f"  CVRs {len(cvrs)}, GLNs {len(glns)}")
    for k, v in sorted(figures.items()):
        print(f"  {k}: {v}")
    if errors:
        for k, v in errors.items():
            print(f"ERROR {k}: {v} (e.g. {examples[k]})")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(check(sys.argv[1]))
