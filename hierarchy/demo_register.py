"""The demo register of a first start (``sorregistry load-demo``, run by ``make run``).

Large enough to use: 4,000 organisations of every ownership in the real register's
shape, made by the project's seeded generator (``bench/generate_sor_export.py``; the
file ``demo/generated_register.xml.gz`` is its output, committed so that the first
start generates nothing and needs no ``bench/``)::

    python bench/generate_sor_export.py demo.xml --entities 4000 --seed 519 \\
        --municipalities 8 --regions 2 --state-owners 2

Seed 519 is the first whose eight municipalities include København (0101) and Aarhus
(0751) and whose two regions are Hovedstaden and Midtjylland, so the demo holds the
real Copenhagen and Aarhus names the generator carries (Københavns Kommune, Aarhus
Universitetshospital, postal towns). With it: the real public SOR samples (a private
eye hospital with SHAK codes, a GP practice, a pharmacy, a private clinic with a real
CVR) and the SHAK demo (the real SHAK register's codes). Every list of the picker -
statslig, regional, kommunal, privat - is non-empty.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy import select

from hierarchy.models import Organisation
from hierarchy.service import register_is_empty
from hierarchy.shak_import import ShakImportResult, import_shak_file
from hierarchy.sor_import import ImportResult, import_sor_files
from sorregistry.database import DbSession

__all__ = ["DemoMunicipality", "DemoSummary", "load", "register_is_empty"]

GENERATED = "generated_register.xml.gz"
SHAK_DEMO = "SHAK_DEMO.TXT"
ACTOR = "demo"
# The reporter's login acts for the private clinic of the real v2 sample (Sor_small.xml),
# so that "Mit CVR" shows a real owner's units.
REPORTER_CVR = "35095748"
# The municipality login is Aarhus Kommune's (kommunekode 0751) in the generated register.
MUNICIPALITY_CODE = "0751"


@dataclass(frozen=True, slots=True)
class DemoMunicipality:
    """The municipality a demo login acts for: its kommunekode, name and CVR."""

    code: str
    name: str
    cvr: str | None


@dataclass(frozen=True, slots=True)
class DemoSummary:
    sor: ImportResult
    shak: ShakImportResult
    municipality: DemoMunicipality | None
    reporter_cvr: str | None

    def text(self) -> str:
        return self.sor.summary() + "\n" + self.shak.summary()


def load(session: DbSession) -> DemoSummary:
    """Import the demo register into *session* (the caller commits)."""
    demo = resources.files("hierarchy") / "demo"
    with (resources.as_file(demo) as folder,
          tempfile.TemporaryDirectory(prefix="sor-demo-") as scratch):
        generated = Path(scratch) / GENERATED.removesuffix(".gz")
        with gzip.open(folder / GENERATED, "rb") as packed, generated.open("wb") as plain:
            shutil.copyfileobj(packed, plain)
        samples = sorted(entry for entry in folder.iterdir() if entry.name.endswith(".xml"))
        sor = import_sor_files(session, [generated, *samples], actor=ACTOR)
        shak = import_shak_file(session, folder / SHAK_DEMO, actor=ACTOR)
    return DemoSummary(sor=sor, shak=shak, municipality=_municipality(session),
                       reporter_cvr=_owner_cvr(session, REPORTER_CVR))


def _municipality(session: DbSession) -> DemoMunicipality | None:
    row = session.execute(
        select(Organisation.name, Organisation.cvr)
        .where(Organisation.level == "IE", Organisation.ownership == "kommunal",
               Organisation.eff_municipality_code == MUNICIPALITY_CODE)
        .order_by(Organisation.sor_code).limit(1)
    ).first()
    return None if row is None else DemoMunicipality(MUNICIPALITY_CODE, row.name, row.cvr)


def _owner_cvr(session: DbSession, cvr: str) -> str | None:
    found = session.execute(
        select(Organisation.sor_code).where(Organisation.owner_cvr == cvr).limit(1)).first()
    return cvr if found is not None else None
