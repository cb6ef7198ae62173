#!/usr/bin/env python3
"""Generate a realistic, synthetic SOR XML v2.0.0 export of any size.

The output has the element names, namespaces and nesting of the real v2 sample
(``shared/data/sor/sor-xml-v2/Sor_small.xml``): ``SorTree`` > ``InstitutionOwnerEntity``
> ``InstitutionOwner`` + ``HealthInstitutionEntity`` > ``HealthInstitution`` +
``OrganizationalUnitEntity`` > ``OrganizationalUnit`` + nested ``OrganizationalUnitEntity``.
Elements the v2 sample does not show are taken from the v1 schema (same order, v1 leaf
elements under the ``sor1:`` prefix): ``sor1:ShakIdentifier``, ``sor1:ProviderIdentifier``
(ydernummer), ``ClinicalSpecialityCollection`` > ``ClinicalSpeciality`` >
``sor1:SpecialityCode`` + ``sor1:SpecialityType``, ``ReplacesEntityCollection`` /
``ReplacedByEntityCollection`` > ``sor1:SorIdentifier``, ``sor1:ToDate`` in ``sor1:SorStatus``,
``sor1:FaxNumberIdentifier``; an SI with its own GLN has ``EanLocationCodeOption`` >
``EanLocationCodeEntity`` (v1's ``OptionalEanLocationCode`` choice).

The shape follows the real register (for 200,000 entities; other sizes scale):
5 regions with hospitals (4-digit SHAK codes) and deep department trees (SHAK department
and section codes), 98 municipalities with 500-1,500 units each, a few state owners, and
tens of thousands of private owners (CVR, one clinic, 1-3 providers with a ydernummer).
Every SOR code, CVR and GLN is valid and unique.

Stdlib only; the file is written as it is generated (memory stays flat); the same seed
gives the same bytes.  ``--mutate`` and ``--drop`` make a later "changed" export of the
same register (same seed): names and phones changed on a fraction of the entities, a
fraction of OE subtrees left out; everything else is identical.

    python bench/generate_sor_export.py OUT.xml --entities 200000 [--seed 1]
    python bench/generate_sor_export.py OUT2.xml --entities 200000 --mutate 0.05 --drop 0.01

Importable (also by path, via importlib) as ``generate(path, entities, seed=1, ...)``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import random
import sys
import time
from collections.abc import Callable

# --- namespaces (the root element's attributes, byte for byte as in Sor_small.xml) -------

ROOT_OPEN = (
    '<SorTree xmlns:osak="http://rep.oio.dk/osak.dk/xml/schemas/2006/04/25/" '
    'xmlns:cpr="http://rep.oio.dk/cpr.dk/xml/schemas/core/2005/03/18/" '
    'xmlns:cvr="http://rep.oio.dk/cvr.dk/xml/schemas/2005/03/22/" '
    'xmlns:xkom="http://rep.oio.dk/xkom.dk/xml/schemas/2006/01/06/" '
    'xmlns:sor1="urn:oio:sundhedsstyrelsen:organisation:1.0.0" '
    'xmlns:dkcc="http://rep.oio.dk/ebxml/xml/schemas/dkcc/2003/02/13/" '
    'xmlns:dkcc2005="http://rep.oio.dk/ebxml/xml/schemas/dkcc/2005/03/15/" '
    'xmlns:kms="http://rep.oio.dk/kms.dk/xml/schemas/2007/05/23/" '
    'xmlns:xkom1="http://rep.oio.dk/xkom.dk/xml/schemas/2005/03/15/" '
    'xmlns:dkcc2005-2="http://rep.oio.dk/ebxml/xml/schemas/dkcc/2005/05/13/" '
    'xmlns="urn:oio:nsi:2.0.0">'
)

# Qualified names of the elements the v2 sample does not show (see the module docstring).
SHAK = "sor1:ShakIdentifier"
PROVIDER = "sor1:ProviderIdentifier"
SPEC_COLL = "ClinicalSpecialityCollection"
SPEC = "ClinicalSpeciality"
SPEC_CODE = "sor1:SpecialityCode"
SPEC_TYPE = "sor1:SpecialityType"
REPLACES = "ReplacesEntityCollection"
REPLACED_BY = "ReplacedByEntityCollection"

# --- code lists ---------------------------------------------------------------------------

OWNER_REGION = "550881000005103"
OWNER_MUNICIPALITY = "547211000005108"
OWNER_STATE = "398070004"
OWNER_PRIVATE = "550891000005100"

SPECIALITY_TYPE = "51000095001"
SPEC_ALMEN_MEDICIN = "408443003"

REGIONS: dict[str, tuple[str, str, str, str, str, str, str]] = {
    # code: (name, street, number, postcode, district, kommunekode, web domain)
    "1081": ("Region Nordjylland", "Niels Bohrs Vej", "30", "9220", "Aalborg Øst", "0851",
             "rn.dk"),
    "1082": ("Region Midtjylland", "Skottenborg", "26", "8800", "Viborg", "0791", "rm.dk"),
    "1083": ("Region Syddanmark", "Damhaven", "12", "7100", "Vejle", "0630",
             "regionsyddanmark.dk"),
    "1084": ("Region Hovedstaden", "Kongens Vænge", "2", "3400", "Hillerød", "0219",
             "regionh.dk"),
    "1085": ("Region Sjælland", "Alléen", "15", "4180", "Sorø", "0340", "regionsjaelland.dk"),
}

# kommunekode, name, region, population (thousands), latitude, longitude, postcodes.
# The 98 Danish municipalities (dk_municipality_codes_dkcore.csv without 0411 Christiansø).
MUNICIPALITIES: list[tuple[str, str, str, float, float, float, tuple[tuple[str, str], ...]]] = [
    ("0101", "København", "1084", 650, 55.676, 12.568, (
        ("1550", "København V"), ("2100", "København Ø"), ("2200", "København N"),
        ("2300", "København S"), ("2400", "København NV"), ("2450", "København SV"))),
    ("0147", "Frederiksberg", "1084", 104, 55.678, 12.532, (("2000", "Frederiksberg"),)),
    ("0151", "Ballerup", "1084", 48, 55.731, 12.363, (("2750", "Ballerup"),)),
    ("0153", "Brøndby", "1084", 35, 55.648, 12.418, (("2605", "Brøndby"),)),
    ("0155", "Dragør", "1084", 14, 55.594, 12.672, (("2791", "Dragør"),)),
    ("0157", "Gentofte", "1084", 75, 55.750, 12.550, (
        ("2820", "Gentofte"), ("2900", "Hellerup"), ("2920", "Charlottenlund"))),
    ("0159", "Gladsaxe", "1084", 69, 55.733, 12.489, (("2860", "Søborg"), ("2880", "Bagsværd"))),
    ("0161", "Glostrup", "1084", 23, 55.666, 12.404, (("2600", "Glostrup"),)),
    ("0163", "Herlev", "1084", 29, 55.724, 12.440, (("2730", "Herlev"),)),
    ("0165", "Albertslund", "1084", 28, 55.657, 12.356, (("2620", "Albertslund"),)),
    ("0167", "Hvidovre", "1084", 53, 55.642, 12.475, (("2650", "Hvidovre"),)),
    ("0169", "Høje-Taastrup", "1084", 51, 55.650, 12.270, (("2630", "Taastrup"),)),
    ("0173", "Lyngby-Taarbæk", "1084", 56, 55.771, 12.504, (("2800", "Kongens Lyngby"),)),
    ("0175", "Rødovre", "1084", 40, 55.680, 12.452, (("2610", "Rødovre"),)),
    ("0183", "Ishøj", "1084", 23, 55.615, 12.352, (("2635", "Ishøj"),)),
    ("0185", "Tårnby", "1084", 43, 55.630, 12.600, (("2770", "Kastrup"),)),
    ("0187", "Vallensbæk", "1084", 16, 55.623, 12.384, (("2625", "Vallensbæk"),)),
    ("0190", "Furesø", "1084", 41, 55.783, 12.340, (("3500", "Værløse"), ("3520", "Farum"))),
    ("0201", "Allerød", "1084", 26, 55.871, 12.357, (("3450", "Allerød"),)),
    ("0210", "Fredensborg", "1084", 41, 55.975, 12.405, (
        ("3480", "Fredensborg"), ("2990", "Nivå"))),
    ("0217", "Helsingør", "1084", 63, 56.036, 12.613, (("3000", "Helsingør"),)),
    ("0219", "Hillerød", "1084", 52, 55.927, 12.311, (("3400", "Hillerød"),)),
    ("0223", "Hørsholm", "1084", 25, 55.881, 12.501, (("2970", "Hørsholm"),)),
    ("0230", "Rudersdal", "1084", 56, 55.823, 12.491, (("2840", "Holte"), ("2950", "Vedbæk"))),
    ("0240", "Egedal", "1084", 44, 55.778, 12.183, (("3660", "Stenløse"),)),
    ("0250", "Frederikssund", "1084", 45, 55.839, 12.069, (("3600", "Frederikssund"),)),
    ("0260", "Halsnæs", "1084", 31, 55.966, 11.941, (("3300", "Frederiksværk"),)),
    ("0270", "Gribskov", "1084", 41, 56.058, 12.242, (("3200", "Helsinge"), ("3250", "Gilleleje"))),
    ("0400", "Bornholm", "1084", 39, 55.103, 14.707, (("3700", "Rønne"), ("3730", "Nexø"))),
    ("0253", "Greve", "1085", 50, 55.583, 12.300, (("2670", "Greve"),)),
    ("0259", "Køge", "1085", 61, 55.458, 12.182, (("4600", "Køge"),)),
    ("0265", "Roskilde", "1085", 89, 55.641, 12.080, (("4000", "Roskilde"),)),
    ("0269", "Solrød", "1085", 23, 55.535, 12.220, (("2680", "Solrød Strand"),)),
    ("0306", "Odsherred", "1085", 33, 55.833, 11.720, (("4500", "Nykøbing Sj"), ("4560", "Vig"))),
    ("0316", "Holbæk", "1085", 72, 55.717, 11.713, (("4300", "Holbæk"),)),
    ("0320", "Faxe", "1085", 37, 55.256, 12.119, (("4690", "Haslev"), ("4640", "Faxe"))),
    ("0326", "Kalundborg", "1085", 49, 55.682, 11.089, (("4400", "Kalundborg"),)),
    ("0329", "Ringsted", "1085", 35, 55.443, 11.790, (("4100", "Ringsted"),)),
    ("0330", "Slagelse", "1085", 79, 55.402, 11.354, (("4200", "Slagelse"), ("4230", "Skælskør"))),
    ("0336", "Stevns", "1085", 23, 55.330, 12.300, (("4660", "Store Heddinge"),)),
    ("0340", "Sorø", "1085", 30, 55.432, 11.556, (("4180", "Sorø"),)),
    ("0350", "Lejre", "1085", 28, 55.604, 11.975, (("4320", "Lejre"),)),
    ("0360", "Lolland", "1085", 41, 54.767, 11.500, (("4930", "Maribo"), ("4900", "Nakskov"))),
    ("0370", "Næstved", "1085", 83, 55.230, 11.761, (("4700", "Næstved"),)),
    ("0376", "Guldborgsund", "1085", 60, 54.769, 11.872, (("4800", "Nykøbing F"),)),
    ("0390", "Vordingborg", "1085", 45, 55.008, 11.910, (("4760", "Vordingborg"),)),
    ("0410", "Middelfart", "1083", 39, 55.506, 9.730, (("5500", "Middelfart"),)),
    ("0420", "Assens", "1083", 41, 55.270, 9.900, (("5610", "Assens"),)),
    ("0430", "Faaborg-Midtfyn", "1083", 51, 55.095, 10.242, (
        ("5600", "Faaborg"), ("5750", "Ringe"))),
    ("0440", "Kerteminde", "1083", 24, 55.449, 10.657, (("5300", "Kerteminde"),)),
    ("0450", "Nyborg", "1083", 32, 55.312, 10.790, (("5800", "Nyborg"),)),
    ("0461", "Odense", "1083", 207, 55.396, 10.389, (
        ("5000", "Odense C"), ("5200", "Odense V"), ("5230", "Odense M"))),
    ("0479", "Svendborg", "1083", 59, 55.060, 10.607, (("5700", "Svendborg"),)),
    ("0480", "Nordfyns", "1083", 29, 55.500, 10.200, (("5400", "Bogense"), ("5471", "Søndersø"))),
    ("0482", "Langeland", "1083", 12, 54.933, 10.717, (("5900", "Rudkøbing"),)),
    ("0492", "Ærø", "1083", 6, 54.889, 10.412, (("5970", "Ærøskøbing"), ("5960", "Marstal"))),
    ("0510", "Haderslev", "1083", 55, 55.249, 9.488, (("6100", "Haderslev"),)),
    ("0530", "Billund", "1083", 27, 55.731, 9.112, (("7190", "Billund"), ("7200", "Grindsted"))),
    ("0540", "Sønderborg", "1083", 74, 54.909, 9.792, (("6400", "Sønderborg"),)),
    ("0550", "Tønder", "1083", 37, 54.933, 8.867, (("6270", "Tønder"),)),
    ("0561", "Esbjerg", "1083", 116, 55.476, 8.459, (("6700", "Esbjerg"),)),
    ("0563", "Fanø", "1083", 3.5, 55.441, 8.410, (("6720", "Fanø"),)),
    ("0573", "Varde", "1083", 50, 55.621, 8.481, (("6800", "Varde"),)),
    ("0575", "Vejen", "1083", 43, 55.481, 9.138, (("6600", "Vejen"),)),
    ("0580", "Aabenraa", "1083", 59, 55.044, 9.418, (("6200", "Aabenraa"),)),
    ("0607", "Fredericia", "1083", 52, 55.566, 9.753, (("7000", "Fredericia"),)),
    ("0621", "Kolding", "1083", 94, 55.490, 9.472, (("6000", "Kolding"),)),
    ("0630", "Vejle", "1083", 120, 55.709, 9.536, (("7100", "Vejle"),)),
    ("0615", "Horsens", "1082", 96, 55.861, 9.850, (("8700", "Horsens"),)),
    ("0657", "Herning", "1082", 90, 56.139, 8.974, (("7400", "Herning"),)),
    ("0661", "Holstebro", "1082", 59, 56.360, 8.616, (("7500", "Holstebro"),)),
    ("0665", "Lemvig", "1082", 20, 56.549, 8.311, (("7620", "Lemvig"),)),
    ("0671", "Struer", "1082", 21, 56.491, 8.594, (("7600", "Struer"),)),
    ("0706", "Syddjurs", "1082", 43, 56.312, 10.518, (("8400", "Ebeltoft"), ("8410", "Rønde"))),
    ("0707", "Norddjurs", "1082", 37, 56.412, 10.886, (("8500", "Grenaa"),)),
    ("0710", "Favrskov", "1082", 49, 56.331, 9.940, (("8450", "Hammel"), ("8370", "Hadsten"))),
    ("0727", "Odder", "1082", 23, 55.973, 10.153, (("8300", "Odder"),)),
    ("0730", "Randers", "1082", 99, 56.461, 10.036, (("8900", "Randers C"),)),
    ("0740", "Silkeborg", "1082", 97, 56.170, 9.545, (("8600", "Silkeborg"),)),
    ("0741", "Samsø", "1082", 3.7, 55.855, 10.612, (("8305", "Samsø"),)),
    ("0746", "Skanderborg", "1082", 64, 56.035, 9.929, (("8660", "Skanderborg"),)),
    ("0751", "Aarhus", "1082", 360, 56.157, 10.211, (
        ("8000", "Aarhus C"), ("8200", "Aarhus N"), ("8210", "Aarhus V"), ("8260", "Viby J"))),
    ("0756", "Ikast-Brande", "1082", 42, 56.139, 9.157, (("7430", "Ikast"), ("7330", "Brande"))),
    ("0760", "Ringkøbing-Skjern", "1082", 56, 56.090, 8.244, (
        ("6950", "Ringkøbing"), ("6900", "Skjern"))),
    ("0766", "Hedensted", "1082", 47, 55.770, 9.700, (("8722", "Hedensted"),)),
    ("0779", "Skive", "1082", 46, 56.567, 9.027, (("7800", "Skive"),)),
    ("0791", "Viborg", "1082", 97, 56.453, 9.402, (("8800", "Viborg"),)),
    ("0773", "Morsø", "1081", 20, 56.795, 8.732, (("7900", "Nykøbing M"),)),
    ("0787", "Thisted", "1081", 43, 56.955, 8.695, (("7700", "Thisted"),)),
    ("0810", "Brønderslev", "1081", 36, 57.270, 9.941, (("9700", "Brønderslev"),)),
    ("0813", "Frederikshavn", "1081", 59, 57.441, 10.537, (
        ("9900", "Frederikshavn"), ("9990", "Skagen"))),
    ("0820", "Vesthimmerland", "1081", 37, 56.800, 9.373, (("9600", "Aars"),)),
    ("0825", "Læsø", "1081", 1.8, 57.267, 11.000, (("9940", "Læsø"),)),
    ("0840", "Rebild", "1081", 30, 56.840, 9.830, (("9530", "Støvring"),)),
    ("0846", "Mariagerfjord", "1081", 42, 56.650, 10.000, (("9500", "Hobro"),)),
    ("0849", "Jammerbugt", "1081", 38, 57.140, 9.560, (("9440", "Aabybro"),)),
    ("0851", "Aalborg", "1081", 220, 57.048, 9.919, (
        ("9000", "Aalborg"), ("9200", "Aalborg SV"), ("9400", "Nørresundby"))),
    ("0860", "Hjørring", "1081", 64, 57.464, 9.982, (("9800", "Hjørring"),)),
]

# Hospitals per region: (SHAK code, name, abbreviation, kommunekode, relative size, type).
# Codes and most names from the public SHAK register; a few are synthetic.
HOSPITAL = "22232009"
HOSPITALS: dict[str, list[tuple[str, str, str, str, float, str]]] = {
    "1084": [
        ("1301", "Rigshospitalet", "RH", "0101", 3.0, HOSPITAL),
        ("1309", "Bispebjerg og Frederiksberg Hospital", "BFH", "0101", 1.5, HOSPITAL),
        ("1330", "Amager og Hvidovre Hospital", "AHH", "0167", 1.6, HOSPITAL),
        ("1516", "Herlev og Gentofte Hospital", "HGH", "0163", 1.8, HOSPITAL),
        ("2000", "Nordsjællands Hospital", "NOH", "0219", 1.3, HOSPITAL),
        ("4001", "Bornholms Hospital", "BOH", "0400", 0.4, HOSPITAL),
        ("1500", "Region Hovedstadens Psykiatri", "PSYK", "0101", 1.2, HOSPITAL),
        ("1520", "Akutberedskabet", "AKB", "0240", 0.3, "554211000005102"),
    ],
    "1085": [
        ("3800", "Sjællands Universitetshospital", "SUH", "0259", 1.6, HOSPITAL),
        ("3810", "Holbæk Sygehus", "HOL", "0316", 0.8, HOSPITAL),
        ("3820", "Nykøbing F. Sygehus", "NFS", "0376", 0.7, HOSPITAL),
        ("3830", "Næstved, Slagelse og Ringsted Sygehuse", "NSR", "0330", 1.0, HOSPITAL),
        ("3850", "Psykiatrien Region Sjælland", "PRS", "0329", 0.6, HOSPITAL),
        ("3860", "Præhospitalt Center", "PHC", "0370", 0.2, "554211000005102"),
    ],
    "1083": [
        ("4202", "Odense Universitetshospital", "OUH", "0461", 2.2, HOSPITAL),
        ("4212", "OUH Svendborg Sygehus", "SVS", "0479", 0.6, HOSPITAL),
        ("5501", "Sydvestjysk Sygehus", "SVS", "0561", 1.0, HOSPITAL),
        ("5000", "Sygehus Sønderjylland", "SHS", "0580", 0.9, HOSPITAL),
        ("6007", "Sygehus Lillebælt", "SLB", "0621", 1.2, HOSPITAL),
        ("5008", "Psykiatrien i Region Syddanmark", "PSD", "0510", 0.7, HOSPITAL),
    ],
    "1082": [
        ("6620", "Aarhus Universitetshospital", "AUH", "0751", 2.4, HOSPITAL),
        ("6650", "Gødstrup Hospital", "GØD", "0657", 1.1, HOSPITAL),
        ("6006", "Regionshospitalet Horsens", "RHH", "0615", 0.7, HOSPITAL),
        ("7005", "Regionshospitalet Randers", "RRA", "0730", 0.7, HOSPITAL),
        ("6630", "Regionshospitalet Midt", "RHM", "0791", 0.9, HOSPITAL),
        ("6600", "Psykiatrien Region Midtjylland", "PRM", "0751", 0.8, HOSPITAL),
        ("6610", "Præhospitalet", "PRÆ", "0751", 0.2, "554211000005102"),
    ],
    "1081": [
        ("8001", "Aalborg Universitetshospital", "AAUH", "0851", 2.0, HOSPITAL),
        ("8003", "Regionshospital Nordjylland", "RHN", "0860", 0.9, HOSPITAL),
        ("7603", "Sygehus Thy-Mors", "STM", "0787", 0.4, HOSPITAL),
        ("8026", "Psykiatrien Region Nordjylland", "PSN", "0851", 0.6, HOSPITAL),
    ],
}

# Hospital departments: (name, clinical speciality codes, OE entity type).
DEPARTMENTS: list[tuple[str, tuple[str, ...], str]] = [
    ("Kardiologisk Afdeling", ("394579002",), "550851000005109"),
    ("Medicinsk Afdeling", ("419192003",), "550851000005109"),
    ("Ortopædkirurgisk Afdeling", ("394801008",), "550851000005109"),
    ("Anæstesiologisk Afdeling", ("394577000",), "550851000005109"),
    ("Børne- og Ungeafdelingen", ("394537008",), "550851000005109"),
    ("Gynækologisk-Obstetrisk Afdeling", ("394585009",), "550851000005109"),
    ("Øjenafdelingen", ("394594003",), "550851000005109"),
    ("Øre-, Næse- og Halsafdelingen", ("394604002",), "550851000005109"),
    ("Neurologisk Afdeling", ("394591006",), "550851000005109"),
    ("Urologisk Afdeling", ("394612005",), "550851000005109"),
    ("Røntgen og Skanning", ("394914008",), "309964003"),
    ("Klinisk Biokemisk Afdeling", ("394596001",), "550851000005109"),
    ("Akutafdelingen", ("773568002",), "550871000005101"),
    ("Hæmatologisk Afdeling", ("394803006",), "550851000005109"),
    ("Nyremedicinsk Afdeling", ("394589003",), "550851000005109"),
    ("Lungemedicinsk Afdeling", ("418112009",), "550851000005109"),
    ("Onkologisk Afdeling", ("394592004",), "550851000005109"),
    ("Plastikkirurgi og Brandsårsbehandling", ("394611003",), "550851000005109"),
    ("Mave- og Tarmkirurgi", ("551411000005104",), "550851000005109"),
    ("Hjerte-, Lunge- og Karkirurgi", ("394603008", "408463005"), "550851000005109"),
    ("Hudafdelingen", ("394582007",), "550851000005109"),
    ("Reumatologisk Afdeling", ("394810000",), "550851000005109"),
    ("Endokrinologisk Afdeling", ("394583002",), "550851000005109"),
    ("Infektionsmedicinsk Afdeling", ("394807007",), "550851000005109"),
    ("Geriatrisk Afdeling", ("394811001",), "550851000005109"),
    ("Klinisk Mikrobiologisk Afdeling", ("408454008",), "550851000005109"),
    ("Patologiafdelingen", ("394915009",), "550851000005109"),
    ("Neurokirurgisk Afdeling", ("394610002",), "550851000005109"),
    ("Psykiatrisk Center", ("394587001",), "554871000005105"),
    ("Børne- og Ungdomspsykiatrisk Center", ("394588006",), "554871000005105"),
    ("Intensiv Afdeling", ("394577000",), "309904001"),
    ("Operationsafdelingen", ("394609007",), "551611000005102"),
    ("Fysio- og Ergoterapi", (), "550861000005106"),
    ("Sygehusapoteket", (), "554071000005100"),
    ("Hospitalsdirektionen", (), "550811000005108"),
    ("Klinisk Genetisk Afdeling", ("394580004",), "550851000005109"),
    ("Klinisk Fysiologi og Nuklearmedicin", ("394601005",), "550851000005109"),
    ("Arbejdsmedicinsk Klinik", ("394821009",), "550851000005109"),
]
SECTIONS = [
    "Sengeafsnit", "Ambulatorium", "Dagafsnit", "Operationsafsnit", "Sekretariat",
    "Forskningsenhed", "Observationsafsnit", "Sengeafsnit", "Ambulatorium", "Skopiafsnit",
    "Dialyseafsnit", "Udredningsafsnit", "Modtageafsnit", "Opvågning", "Sengeafsnit",
]
SUBUNITS = [
    "Team", "Funktion", "Klinik", "Ambulatorium", "Sygeplejeteam", "Lægeteam",
    "Forløbsfunktion", "Udgående team", "Sengeteam", "Konsultation",
]
HOSPITAL_SUBTYPES = ["550851000005109"] * 8 + [
    "550811000005108", "550821000005102", "550841000005107", "550831000005104"]

# Municipal health institutions: (type, weight, name patterns, OE child type).
MUNICIPAL_SI: list[tuple[str, int, tuple[str, ...], str]] = [
    ("42665001", 30, ("Plejecenter {p}", "Plejehjemmet {p}", "{p} Plejecenter"), "42665001"),
    ("546811000005109", 8, ("Genoptræning {k}", "Træningscenter {p}",
                            "Genoptræningscenter {p}"), "546811000005109"),
    ("264361005", 5, ("Sundhedscenter {k}", "Sundhedshuset {p}"), "264361005"),
    ("554821000005109", 12, ("Hjemmeplejen {d}", "Hjemmeplejen {p}"), "554821000005109"),
    ("550621000005101", 8, ("Sygeplejen {d}", "Hjemmesygeplejen {d}"), "550621000005101"),
    ("550691000005104", 10, ("Tandplejen {p} Skole", "Kommunal Tandpleje {k}",
                             "Tandklinik {p}"), "550691000005104"),
    ("554021000005101", 3, ("Sundhedsplejen {k}", "Sundhedsplejen {d}"), "554021000005101"),
    ("554221000005108", 8, ("Bostedet {p}", "Botilbud {p}", "{p} Bocenter"), "554221000005108"),
    ("554861000005100", 4, ("Handicapcenter {p}", "Dagtilbud {p}"), "554861000005100"),
    ("554871000005105", 3, ("Socialpsykiatrien {d}", "Psykiatrihuset {p}"), "554871000005105"),
    ("56781000005109", 2, ("Misbrugscenter {k}", "Rusmiddelcenter {k}"), "56781000005109"),
    ("557901000005102", 2, ("Forebyggende hjemmebesøg {k}",), "557901000005102"),
    ("702916001", 3, ("Rehabiliteringscenter {p}", "Akutpladser {p}"), "702916001"),
    ("554041000005106", 1, ("Sundheds- og Omsorgsforvaltningen",
                            "Social- og Sundhedsforvaltningen"), "550811000005108"),
    ("554411000005101", 1, ("Jobcenter {k}",), "554411000005101"),
    ("554231000005106", 1, ("Vaccinationsklinik {k}",), "554231000005106"),
    ("556841000005105", 1, ("PPR {k}", "Pædagogisk Psykologisk Rådgivning {d}"),
     "556841000005105"),
]
MUNICIPAL_OE = [
    "Afdeling {p}", "Team {d}", "Boenhed {p}", "Gruppe {c}", "Træningsafdeling",
    "Fysioterapi", "Ergoterapi", "Sygeplejeklinik {p}", "Aftenvagt", "Nattevagt", "Dagcenter {p}",
    "Demensafsnit", "Midlertidige pladser", "Team {c}", "Afsnit {n}", "Distrikt {d}",
]
PLACES = [
    "Solgården", "Egebakken", "Bøgely", "Lindehøj", "Rosenhaven", "Fælledgården", "Skovbrynet",
    "Møllehuset", "Åbjerg", "Kærhuset", "Søhøj", "Ærtebjerg", "Strandgården", "Engbo",
    "Toftegården", "Vesterled", "Østervang", "Nørrebo", "Sønderbro", "Kildegården", "Højvang",
    "Humlebo", "Lærkereden", "Æblehaven", "Bøgebakken", "Åhaven", "Fyrretoften", "Kløvervang",
    "Granly", "Tornhøj", "Kirkebakken", "Mølleådalen", "Bakkehuset", "Ørnereden", "Havnely",
    "Skovgården", "Rønnebær", "Tjørnely", "Hyldebo", "Elmegården", "Ahornhaven", "Ådalen",
]
DISTRICTS = ["Nord", "Syd", "Øst", "Vest", "Centrum", "Midt", "Land", "By", "Nordvest", "Sydøst"]
COLOURS = ["Blå", "Grøn", "Rød", "Gul", "Orange", "Lilla", "Hvid", "Sort", "Sølv", "Guld"]

STATE_OWNERS: list[tuple[str, str, str, str, tuple[tuple[str, str], ...]]] = [
    # name, kommunekode, street, number, SIs: (type, name)
    ("Kriminalforsorgen", "0101", "Strandgade", "100", (
        ("722173008", "Statsfængslet Østjylland, Sundhedsafdelingen"),
        ("722173008", "Storstrøm Fængsel, Sygeafdeling"),
        ("722173008", "Københavns Fængsler, Sundhedsklinikken"),
        ("722173008", "Statsfængslet i Renbæk, Sundhedsafdelingen"))),
    ("Forsvarets Sundhedstjeneste", "0791", "Jægerstien", "1", (
        ("264361005", "Forsvarets Sundhedscenter Aalborg"),
        ("264361005", "Forsvarets Sundhedscenter Holstebro"),
        ("264361005", "Forsvarets Sundhedscenter Høvelte"))),
    ("Statens Serum Institut", "0101", "Artillerivej", "5", (
        ("550651000005108", "Statens Serum Institut, Diagnostik"),
        ("554231000005106", "Statens Serum Institut, Vaccinationsklinik"))),
    ("Udlændingestyrelsen", "0217", "Ryesgade", "53", (
        ("554851000005102", "Asylcenter Sandholm, Sundhedsklinik"),
        ("554851000005102", "Asylcenter Center Kongelunden"))),
    ("Københavns Universitet", "0101", "Nørre Allé", "20", (
        ("550691000005104", "Tandlægeskolen, Klinik for Børnetandpleje"),
        ("550651000005108", "Retsmedicinsk Institut"))),
]

# Private practices: (type, weight, owner patterns, clinic patterns, provider patterns,
# speciality codes or None for "one of SPECIALIST_SPECS").
PRIVATE_KINDS: list[tuple[str, int, tuple[str, ...], tuple[str, ...], tuple[str, ...],
                          tuple[str, ...] | None]] = [
    ("394761003", 20, ("Lægerne {s} I/S", "Læge {n}", "Lægerne {l} & {l2} I/S",
                       "Lægeselskabet {n} ApS"),
     ("Lægerne {s}", "Lægehuset {t}", "Læge {n}", "Lægeklinikken {s}"),
     ("{n}", "Læge {n}", "Lægepraksis v/ {n}"), (SPEC_ALMEN_MEDICIN,)),
    ("547011000005103", 18, ("Fysioterapeut {n}", "Fysioterapi {t} ApS", "{l} Fysioterapi ApS"),
     ("Fysioterapi {t}", "{t} Fysioterapi & Træning", "Fysioterapi {s}"),
     ("Fysioterapeut {n}", "{n}"), ()),
    ("550681000005102", 18, ("Tandlæge {n}", "Tandlægerne {s} I/S", "Tandlægeselskabet {l} ApS"),
     ("Tandlægerne {s}", "Tandklinikken {t}", "Tandlæge {n}"), ("Tandlæge {n}", "{n}"), ()),
    ("550671000005100", 12, ("Speciallæge {n}", "Speciallægeselskabet {l} ApS"),
     ("Speciallægeklinik {t}", "Øjenklinikken {t}", "Speciallæge {n}", "Hudklinikken {s}"),
     ("Speciallæge {n}", "{n}"), None),
    ("550641000005106", 5, ("Kiropraktor {n}", "Kiropraktisk Klinik {t} ApS"),
     ("Kiropraktisk Klinik {t}", "Kiropraktorerne {s}"), ("Kiropraktor {n}",), ()),
    ("554061000005105", 8, ("Fodterapeut {n}", "{l} Fodterapi"),
     ("{t} fodterapi", "Fodklinikken {s}"), ("{n}", "Fodterapeut {n}"), ()),
    ("550711000005101", 10, ("Psykolog {n}", "Psykologhuset {t} ApS"),
     ("Psykologerne {s}", "Psykologklinikken {t}"), ("Psykolog {n}", "{n}"), ()),
    ("546821000005103", 2, ("Ergoterapeut {n}",), ("Ergoterapi {t}",), ("{n}",), ()),
    ("550631000005103", 1, ("Jordemoder {n}",), ("Jordemoderklinikken {t}",), ("{n}",), ()),
    ("550861000005106", 2, ("{l} Fys & Ergo ApS",), ("Fysio- og Ergoterapi {t}",),
     ("{n}",), ()),
    ("550701000005104", 2, ("Tandtekniker {n}",), ("Tandteknisk Laboratorium {t}",),
     ("{n}",), ()),
    ("42665001", 1, ("Friplejehjemmet {p} ApS", "Selvejende institution {p}"),
     ("Friplejehjemmet {p}",), ("Afdeling {p}", "{n}"), ()),
]
SPECIALIST_SPECS = (
    "394594003", "394582007", "394604002", "394585009", "394537008", "394587001",
    "394579002", "394810000", "394801008", "394612005", "419192003",
)
FIRST = [
    "Anne", "Mette", "Hanne", "Kirsten", "Lene", "Susanne", "Camilla", "Louise", "Søren",
    "Jørgen", "Niels", "Jens", "Peter", "Lars", "Mads", "Rasmus", "Anders", "Bjørn", "Åse",
    "Mikkel", "Frederik", "Ida", "Sofie", "Emma", "Freja", "Maja", "Jesper", "Morten", "Thomas",
    "Henrik", "Torben", "Bent", "Birthe", "Grethe", "Inger", "Kåre", "Asbjørn", "Line", "Trine",
    "Kasper", "Christian", "Marianne", "Pernille", "Dorte", "Søs", "Bodil", "Jørn", "Gitte",
]
LAST = [
    "Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
    "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen",
    "Christiansen", "Poulsen", "Johansen", "Møller", "Mortensen", "Østergaard", "Bækgaard",
    "Søndergaard", "Kjær", "Brøndum", "Lauridsen", "Dahl", "Frølund", "Ågaard", "Høj", "Skov",
    "Lund", "Bæk", "Holm", "Dam", "Nørgaard", "Mølgaard", "Bøgh", "Baadsgaard", "Kløve",
]
STREETS = [
    "Østergade", "Vestergade", "Nørregade", "Søndergade", "Hovedgaden", "Skolevej", "Kirkevej",
    "Stationsvej", "Møllevej", "Åbrinken", "Ærøvej", "Bøgevej", "Egevej", "Birkevej", "Skovvej",
    "Strandvejen", "Parkvej", "Engvej", "Vænget", "Græsvangen", "Torvet", "Jernbanegade",
    "Algade", "Bredgade", "Nygade", "Lindevej", "Rosenvænget", "Søvej", "Åboulevarden",
    "Fælledvej", "Kongevejen", "Havnegade", "Smedegade", "Præstevænget", "Sønderbrogade",
    "Gøteborg Allé", "Ørstedsvej", "Tværgade", "Bakkevej", "Mågevej",
]
SYSTEM_SUPPLIERS = ("162", "57", "121", "34", "88")
SYSTEM_TYPES = ("225", "41", "300", "112")
EDI_ADMINS = ("639", "116", "201", "77")

T = ["\t" * i for i in range(40)]
ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


# --- identifiers --------------------------------------------------------------------------

_VD = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6), (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4), (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VP = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2), (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_VINV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)


def verhoeff_check_digit(digits: str) -> str:
    """Return the Verhoeff check digit to append to ``digits`` (as SNOMED CT does)."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VD[c][_VP[(i + 1) % 8][ord(ch) - 48]]
    return str(_VINV[c])


def verhoeff_is_valid(number: str) -> bool:
    """Tell whether the last digit of ``number`` is its Verhoeff check digit."""
    c = 0
    for i, ch in enumerate(reversed(number)):
        c = _VD[c][_VP[i % 8][ord(ch) - 48]]
    return c == 0


def sor_code(item_id: int) -> str:
    """SOR code for an item id: ``<item id>1000016<00><Verhoeff check digit>``."""
    body = f"{item_id}100001600"
    return body + verhoeff_check_digit(body)


_CVR_WEIGHTS = (2, 7, 6, 5, 4, 3, 2)


def cvr_from(n7: int) -> str | None:
    """Complete the 7-digit number ``n7`` to a valid CVR, or None where none exists."""
    digits = f"{n7:07d}"
    s = sum(w * int(d) for w, d in zip(_CVR_WEIGHTS, digits, strict=True))
    check = (-s) % 11
    return None if check == 10 else digits + str(check)


def gln_from(payload12: str) -> str:
    """Append the GS1 mod-10 check digit to a 12-digit payload."""
    s = 0
    for i, ch in enumerate(reversed(payload12)):
        s += (ord(ch) - 48) * (3 if i % 2 == 0 else 1)
    return payload12 + str((10 - s % 10) % 10)


def _utm32(lat: float, lon: float) -> tuple[float, float]:
    """ETRS89 / UTM zone 32N (northing, easting) of a latitude/longitude (GRS80)."""
    a = 6378137.0
    f = 1 / 298.257222101
    k0 = 0.9996
    e2 = f * (2 - f)
    ep2 = e2 / (1 - e2)
    phi = math.radians(lat)
    lam = math.radians(lon - 9.0)
    n = a / math.sqrt(1 - e2 * math.sin(phi) ** 2)
    t = math.tan(phi) ** 2
    c = ep2 * math.cos(phi) ** 2
    aa = math.cos(phi) * lam
    m = a * (
        (1 - e2 / 4 - 3 * e2**2 / 64 - 5 * e2**3 / 256) * phi
        - (3 * e2 / 8 + 3 * e2**2 / 32 + 45 * e2**3 / 1024) * math.sin(2 * phi)
        + (15 * e2**2 / 256 + 45 * e2**3 / 1024) * math.sin(4 * phi)
        - (35 * e2**3 / 3072) * math.sin(6 * phi)
    )
    east = k0 * n * (aa + (1 - t + c) * aa**3 / 6
                     + (5 - 18 * t + t * t + 72 * c - 58 * ep2) * aa**5 / 120) + 500000.0
    north = k0 * (m + n * math.tan(phi) * (
        aa * aa / 2 + (5 - t + 9 * c + 4 * c * c) * aa**4 / 24
        + (61 - 58 * t + t * t + 600 * c - 330 * ep2) * aa**6 / 720))
    return north, east


def _esc(s: str) -> str:
    if "&" in s or "<" in s or ">" in s:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s


_SLUG = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "é": "e", "ü": "u"})


def _slug(s: str) -> str:
    s = s.lower().translate(_SLUG)
    return "".join(ch for ch in s if ch.isascii() and ch.isalnum())[:40] or "klinik"


def _mix(x: int) -> int:
    """splitmix64 finaliser: a fast, well-spread 64-bit hash."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def _split(rng: random.Random, total: int, parts: int, alpha: float) -> list[int]:
    """Split ``total`` into ``parts`` positive sizes with heavy-tailed random weights."""
    if parts <= 1:
        return [total]
    w = [rng.paretovariate(alpha) for _ in range(parts)]
    free = total - parts
    sw = sum(w)
    sizes = [1 + int(free * x / sw) for x in w]
    rest = total - sum(sizes)
    i = 0
    while rest > 0:
        sizes[i % parts] += 1
        rest -= 1
        i += 1
    return sizes


# --- the generator ------------------------------------------------------------------------

Address = tuple[str, str, str, str, str, str, str, float, float]
# street, number, postcode, district, kommunekode, streetcode, regioncode, north, east


class _Gen:
    """Streams one export; all random choices come from one seeded ``random.Random``."""

    def __init__(self, fh, seed: int, mutate: float, drop: float, snapshot: dt.date,
                 export_date: dt.date) -> None:
        self.fh = fh
        self.rng = random.Random(seed)
        self.seed = seed
        self.mutate = mutate
        self.drop = drop
        # Random dates are drawn against the base snapshot, so that a changed variant
        # (a later export_date) keeps every unchanged entity byte for byte.
        self.snapshot_ord = snapshot.toordinal()
        self.export_ord = export_date.toordinal()
        self.counts = {"IE": 0, "SI": 0, "OE": 0}
        self.stats = {"dropped": 0, "mutated": 0, "closed": 0, "replaced": 0,
                      "ydernummer": 0, "shak": 0, "gln": 0}
        self._suppress = 0
        r = self.rng
        self._next_item = r.randint(1000, 3000)
        self._pending_replaces: str | None = None
        self._cvr_next = r.randint(1_000_000, 2_000_000)
        self._gln_next = r.randint(0, 10_000_000)
        self._yder_i = 0
        self._yder_a = 7919  # coprime to 10**6: i -> (a*i + b) % 10**6 is a permutation
        self._yder_b = r.randint(0, 999_999)
        self._recent_yder: list[str] = []
        self._date_cache: dict[int, str] = {}
        self.muni = {m[0]: m for m in MUNICIPALITIES}
        self.muni_xy = {m[0]: _utm32(m[4], m[5]) for m in MUNICIPALITIES}
        self._muni_codes = [m[0] for m in MUNICIPALITIES]
        self._muni_cum: list[float] = []
        acc = 0.0
        for m in MUNICIPALITIES:
            acc += m[3]
            self._muni_cum.append(acc)

    # -- output --------------------------------------------------------------------------

    def w(self, s: str) -> None:
        if not self._suppress:
            self.fh.write(s)

    # -- identifiers ---------------------------------------------------------------------

    def alloc(self) -> tuple[int, str, str | None]:
        """Next SOR item id and code, and the code this entity replaces (if any)."""
        item = self._next_item
        self._next_item += 1 + int(self.rng.expovariate(0.25))
        rep = self._pending_replaces
        self._pending_replaces = None
        return item, sor_code(item), rep

    def peek_code(self) -> str:
        return sor_code(self._next_item)

    def cvr(self) -> str:
        while True:
            n = self._cvr_next
            self._cvr_next += 1 + self.rng.randrange(40)
            c = cvr_from(n)
            if c is not None:
                return c

    def gln(self) -> str:
        self._gln_next += 1 + self.rng.randrange(3)
        self.stats["gln"] += not self._suppress
        return gln_from(f"579{self._gln_next:09d}")

    def ydernummer(self) -> str:
        r = self.rng.random()
        if r < 0.025 and self._recent_yder:
            # Not unique in real data: the same number on more than one entity.
            return self.rng.choice(self._recent_yder)
        i = self._yder_i
        self._yder_i += 1
        y = f"{(self._yder_a * i + self._yder_b) % 1_000_000:06d}"
        if r > 0.99:
            y = "99" + y  # SDS prefixed duplicates with "99"
        if len(self._recent_yder) < 64:
            self._recent_yder.append(y)
        else:
            self._recent_yder[i % 64] = y
        return y

    # -- random helpers ------------------------------------------------------------------

    def phone(self) -> str:
        r = self.rng
        return f"{r.choice('2345678')}{r.randrange(10_000_000):07d}"

    def person(self) -> tuple[str, str]:
        r = self.rng
        first = r.choice(FIRST)
        if r.random() < 0.25:
            first = f"{first} {r.choice(FIRST)}"
        return first, r.choice(LAST)

    def pick_municipality(self) -> str:
        x = self.rng.random() * self._muni_cum[-1]
        lo, hi = 0, len(self._muni_cum) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self._muni_cum[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        return self._muni_codes[lo]

    def address(self, kommune: str, street: str | None = None, number: str | None = None,
                pc: tuple[str, str] | None = None) -> Address:
        r = self.rng
        m = self.muni[kommune]
        if street is None:
            street = r.choice(STREETS)
        if number is None:
            number = str(r.randint(1, 180))
            if r.random() < 0.08:
                number += r.choice("ABCD")
        if pc is None:
            pc = r.choice(m[6])
        north, east = self.muni_xy[kommune]
        north += r.uniform(-4000.0, 4000.0)
        east += r.uniform(-4000.0, 4000.0)
        return (street, number, pc[0], pc[1], kommune, f"{r.randint(1, 9899):04d}", m[2],
                north, east)

    def dates(self, lo: int, hi: int, closed_parent: int | None, p_close: float = 0.008
              ) -> tuple[int, int, int, int | None]:
        """FirstFromDate, FromDate, UpdatedAt, ToDate (ordinals) within [lo, hi]."""
        r = self.rng
        snap = self.snapshot_ord
        hi = max(lo, hi)
        first = lo + int((hi - lo) * r.random() ** 1.3)
        from_ = first if r.random() < 0.4 else r.randint(first, max(first, snap - 1))
        updated = from_ - r.randint(0, 12)
        to = None
        if closed_parent is not None:
            to = closed_parent
        elif r.random() < p_close:
            to = r.randint(from_ + 1, snap)
        if to is not None and from_ > to:
            from_ = first = to - 1 if first >= to else first
            updated = from_ - 1
        return first, from_, updated, to

    def d(self, o: int) -> str:
        s = self._date_cache.get(o)
        if s is None:
            s = dt.date.fromordinal(o).isoformat()
            self._date_cache[o] = s
        return s

    # -- deterministic per-entity decisions for the changed variant -----------------------

    def _h(self, item: int, salt: int) -> float:
        return _mix(item * 0x100000001B3 ^ (self.seed << 20) ^ salt) / 2.0**64

    def is_dropped(self, item: int) -> bool:
        return self.drop > 0 and self._h(item, 0xD809) < self.drop

    def is_mutated(self, item: int) -> bool:
        return self.mutate > 0 and self._h(item, 0x3A7E) < self.mutate

    # -- rendering -----------------------------------------------------------------------

    def r_address(self, tag: str, a: Address, ind: int, codes: bool, coords: bool) -> str:
        t, t1, t2 = T[ind], T[ind + 1], T[ind + 2]
        s = (f"{t}<{tag}>\n{t1}<xkom:AddressPostal>\n"
             f"{t2}<dkcc2005:StreetName>{a[0]}</dkcc2005:StreetName>\n"
             f"{t2}<dkcc:StreetBuildingIdentifier>{a[1]}</dkcc:StreetBuildingIdentifier>\n"
             f"{t2}<dkcc2005:PostCodeIdentifier>{a[2]}</dkcc2005:PostCodeIdentifier>\n"
             f"{t2}<dkcc2005:DistrictName>{a[3]}</dkcc2005:DistrictName>\n"
             f'{t2}<dkcc:CountryIdentificationCode scheme="iso3166-alpha2">DK'
             f"</dkcc:CountryIdentificationCode>\n{t1}</xkom:AddressPostal>\n")
        if codes:
            s += (f"{t1}<cpr:MunicipalityCode>{a[4]}</cpr:MunicipalityCode>\n"
                  f"{t1}<cpr:StreetCode>{a[5]}</cpr:StreetCode>\n"
                  f"{t1}<kms:RegionCode>{a[6]}</kms:RegionCode>\n")
        if coords:
            s += (f"{t1}<osak:CoordETRS89z32NMeasure>{a[7]:.3f}</osak:CoordETRS89z32NMeasure>\n"
                  f"{t1}<osak:CoordETRS89z32EMeasure>{a[8]:.3f}</osak:CoordETRS89z32EMeasure>\n")
        return s + f"{t}</{tag}>\n"

    def r_status(self, ds: tuple[int, int, int, int | None], ind: int) -> str:
        t, t1 = T[ind], T[ind + 1]
        first, from_, updated, to = ds
        s = f"{t}<sor1:SorStatus>\n{t1}<sor1:FromDate>{self.d(from_)}</sor1:FromDate>\n"
        if to is not None:
            s += f"{t1}<sor1:ToDate>{self.d(to)}</sor1:ToDate>\n"
        return s + (f"{t1}<sor1:UpdatedAt>{self.d(updated)}</sor1:UpdatedAt>\n"
                    f"{t1}<sor1:FirstFromDate>{self.d(first)}</sor1:FirstFromDate>\n"
                    f"{t}</sor1:SorStatus>\n")

    def r_ean(self, gln: str, region: str, ds: tuple[int, int, int, int | None],
              ind: int) -> str:
        r = self.rng
        t, t1 = T[ind], T[ind + 1]
        return (f"{t}<EanLocationCodeEntity>\n"
                f"{t1}<sor1:EanLocationCode>{gln}</sor1:EanLocationCode>\n"
                f"{t1}<sor1:OnlyInternalIndicator>false</sor1:OnlyInternalIndicator>\n"
                f"{t1}<sor1:NonActiveIndicator>false</sor1:NonActiveIndicator>\n"
                f"{t1}<SystemSupplierIdentifier>{r.choice(SYSTEM_SUPPLIERS)}"
                f"</SystemSupplierIdentifier>\n"
                f"{t1}<SystemTypeIdentifier>{r.choice(SYSTEM_TYPES)}</SystemTypeIdentifier>\n"
                f"{t1}<CommunicationSupplierIdentifier>41000035001"
                f"</CommunicationSupplierIdentifier>\n"
                f"{t1}<kms:RegionCode>{region}</kms:RegionCode>\n"
                f"{t1}<EdiAdministratorIdentifier>{r.choice(EDI_ADMINS)}"
                f"</EdiAdministratorIdentifier>\n"
                + self.r_status(ds, ind + 1) + f"{t}</EanLocationCodeEntity>\n")

    def r_virtual(self, email: str | None, web: str | None, phone: str, fax: str | None,
                  ind: int) -> str:
        t, t1 = T[ind], T[ind + 1]
        s = f"{t}<sor1:VirtualAddressInformation>\n"
        if email:
            s += f"{t1}<xkom1:EmailAddressIdentifier>{email}</xkom1:EmailAddressIdentifier>\n"
        if web:
            s += f"{t1}<sor1:Website>{web}</sor1:Website>\n"
        s += f"{t1}<sor1:TelephoneNumberIdentifier>{phone}</sor1:TelephoneNumberIdentifier>\n"
        if fax:
            s += f"{t1}<sor1:FaxNumberIdentifier>{fax}</sor1:FaxNumberIdentifier>\n"
        return s + f"{t}</sor1:VirtualAddressInformation>\n"

    def r_refs(self, tag: str, code: str, ind: int) -> str:
        return (f"{T[ind]}<{tag}>\n{T[ind + 1]}<sor1:SorIdentifier>{code}</sor1:SorIdentifier>\n"
                f"{T[ind]}</{tag}>\n")

    def entity(
        self, level: str, ind: int, name: str, etype: str, *,
        lo: int, hi: int, closed_parent: int | None, leaf: bool,
        address: Address | None, codes: bool = True, visiting: bool = False,
        virtual: tuple[str | None, str | None] | None = None, fax: bool = False,
        shak: str | None = None, yder: str | None = None, specs: tuple[str, ...] = (),
        gln: str | None = None, cvr: str | None = None, p_close: float = 0.008,
    ) -> tuple[str, int, int | None]:
        """Write one IE, SI or OE element (not its ``...Entity`` wrapper).

        Returns its SOR code, its FirstFromDate and its ToDate (for the children).
        """
        r = self.rng
        item, code, replaces = self.alloc()
        ds = self.dates(lo, hi, closed_parent, p_close)
        to = ds[3]
        replaced_by = None
        if to is not None and leaf and closed_parent is None and r.random() < 0.3:
            replaced_by = self.peek_code()
            self._pending_replaces = code
        phone = self.phone() if virtual is not None else ""
        fax_no = self.phone() if fax else None
        coords = r.random() < 0.96
        if self.is_mutated(item):
            # A later export: new name and phone, FromDate within the last weeks.
            h = self._h(item, 0x51)
            name = f"{name} {DISTRICTS[int(h * len(DISTRICTS))]}"
            if virtual is not None:
                phone = f"{2 + int(h * 7)}{int(self._h(item, 0x52) * 1e7):07d}"
            if ds[3] is None:
                from_ = max(ds[0], self.export_ord - 1 - int(h * 20))
                ds = (ds[0], from_, from_ - 1, None)
            self.stats["mutated"] += not self._suppress
        name = _esc(name[:60].rstrip())
        tag = {"IE": "InstitutionOwner", "SI": "HealthInstitution",
               "OE": "OrganizationalUnit"}[level]
        t, t1 = T[ind], T[ind + 1]
        parts = [f"{t}<{tag}>\n{t1}<sor1:SorIdentifier>{code}</sor1:SorIdentifier>\n"
                 f"{t1}<sor1:EntityName>{name}</sor1:EntityName>\n"
                 f"{t1}<EntityTypeIdentifier>{etype}</EntityTypeIdentifier>\n"]
        if shak:
            parts.append(f"{t1}<{SHAK}>{shak}</{SHAK}>\n")
        if yder:
            parts.append(f"{t1}<{PROVIDER}>{yder}</{PROVIDER}>\n")
        region = address[6] if address else "1084"
        if level == "IE":
            parts.append(self.r_ean(gln or self.gln(), region, ds, ind + 1))
        elif gln:
            parts.append(f"{t1}<EanLocationCodeOption>\n")
            parts.append(self.r_ean(gln, region, ds, ind + 2))
            parts.append(f"{t1}</EanLocationCodeOption>\n")
        else:
            parts.append(f"{t1}<EanLocationCodeOption>\n{T[ind + 2]}<EntityInheritanceIndicator>"
                         f"true</EntityInheritanceIndicator>\n{t1}</EanLocationCodeOption>\n")
        if address is not None:
            parts.append(self.r_address("PostalAddressInformation", address, ind + 1, codes,
                                        coords))
            if visiting:
                parts.append(self.r_address("VisitingAddressInformation", address, ind + 1,
                                            codes, coords))
        if virtual is not None:
            parts.append(self.r_virtual(virtual[0], virtual[1], phone, fax_no, ind + 1))
        if specs:
            t2, t3 = T[ind + 2], T[ind + 3]
            parts.append(f"{t1}<{SPEC_COLL}>\n")
            for sc in specs:
                parts.append(f"{t2}<{SPEC}>\n{t3}<{SPEC_CODE}>{sc}</{SPEC_CODE}>\n"
                             f"{t3}<{SPEC_TYPE}>{SPECIALITY_TYPE}</{SPEC_TYPE}>\n{t2}</{SPEC}>\n")
            parts.append(f"{t1}</{SPEC_COLL}>\n")
        parts.append(self.r_status(ds, ind + 1))
        if replaces:
            parts.append(self.r_refs(REPLACES, replaces, ind + 1))
        if replaced_by:
            parts.append(self.r_refs(REPLACED_BY, replaced_by, ind + 1))
        if cvr:
            parts.append(f"{t1}<cvr:CVRnumberIdentifier>{cvr}</cvr:CVRnumberIdentifier>\n")
        parts.append(f"{t}</{tag}>\n")
        if not self._suppress:
            self.fh.write("".join(parts))
            self.counts[level] += 1
            st = self.stats
            st["closed"] += to is not None
            st["replaced"] += replaced_by is not None
            st["ydernummer"] += yder is not None
            st["shak"] += shak is not None
        return code, ds[0], to

    def virtual_for(self, name: str, domain: str, p_email: float, p_web: float
                    ) -> tuple[str | None, str | None]:
        r = self.rng
        email = None
        if r.random() < p_email:
            local = r.choice(("info", "kontakt", "post", _slug(name)[:24]))
            if local in domain:
                local = "kontakt"
            email = f"{local}@{domain}"
        web = f"www.{domain}" if r.random() < p_web and domain != "gmail.com" else None
        return email, web

    # -- OE trees ------------------------------------------------------------------------

    def oe_tree(self, budget: int, depth: int, ind: int, ctx: dict, parent: dict) -> None:
        """Write an OrganizationalUnitEntity with ``budget`` units (itself included)."""
        r = self.rng
        item = self._next_item
        drop_here = not self._suppress and self.is_dropped(item)
        if drop_here:
            self._suppress += 1
        self.w(f"{T[ind]}<OrganizationalUnitEntity>\n")
        spec = ctx["name"](self, depth, parent)
        address = parent["address"]
        has_address = r.random() < ctx["p_addr"]
        if has_address and r.random() < 0.5:
            address = self.address(address[4])
        elif has_address:
            address = (address[0], address[1], address[2], address[3], address[4], address[5],
                       address[6], address[7] + r.uniform(-50, 50), address[8] + r.uniform(-50, 50))
        virtual = None
        if r.random() < ctx["p_virtual"]:
            virtual = self.virtual_for(spec["name"], ctx["domain"], 0.5, 0.1)
        code, first, to = self.entity(
            "OE", ind + 1, spec["name"], spec["type"],
            lo=parent["first"], hi=parent["to"] or self.snapshot_ord - 1,
            closed_parent=parent["to"], leaf=budget == 1,
            address=address if has_address else None, codes=r.random() < 0.93,
            visiting=has_address and r.random() < 0.1, virtual=virtual,
            fax=virtual is not None and r.random() < 0.04,
            shak=spec.get("shak"), yder=spec.get("yder"), specs=spec.get("specs", ()),
            gln=self.gln() if r.random() < ctx["p_gln"] else None,
        )
        if drop_here:
            self.stats["dropped"] += 1 + (budget - 1)
        rest = budget - 1
        if rest > 0:
            me = {"address": address, "first": first, "to": to, **spec}
            if depth + 1 >= ctx["max_depth"]:
                sizes = [1] * rest
            else:
                fan = max(1, min(rest, round(math.sqrt(rest) * r.uniform(0.6, 1.5))))
                sizes = _split(r, rest, fan, ctx["alpha"])
            for i, size in enumerate(sizes):
                me["index"] = i
                self.oe_tree(size, depth + 1, ind + 1, ctx, me)
        self.w(f"{T[ind]}</OrganizationalUnitEntity>\n")
        if drop_here:
            self._suppress -= 1

    def si(self, ind: int, budget: int, si_fields: dict, ctx: dict, fanout: Callable[[int], int],
           lo: int, closed_parent: int | None, inherit: Address) -> None:
        """Write a HealthInstitutionEntity of ``budget`` entities (the SI included)."""
        r = self.rng
        self.w(f"{T[ind]}<HealthInstitutionEntity>\n")
        code, first, to = self.entity(
            "SI", ind + 1, lo=lo, hi=closed_parent or self.snapshot_ord - 1,
            closed_parent=closed_parent, leaf=budget == 1, **si_fields)
        rest = budget - 1
        if rest > 0:
            parent = {"address": si_fields["address"] or inherit, "first": first, "to": to,
                      "index": 0, **ctx.get("si_spec", {})}
            sizes = _split(r, rest, fanout(rest), ctx["alpha"])
            for i, size in enumerate(sizes):
                parent["index"] = i
                self.oe_tree(size, 1, ind + 1, ctx, parent)
        self.w(f"{T[ind]}</HealthInstitutionEntity>\n")

    def owner(self, name: str, etype: str, address: Address, cvr: str, domain: str,
              p_email: float, p_web: float, p_close: float = 0.0) -> tuple[int, int | None]:
        self.w(f"{T[1]}<InstitutionOwnerEntity>\n")
        virtual = self.virtual_for(name, domain, p_email, p_web)
        _, first, to = self.entity(
            "IE", 2, name, etype, lo=self.snapshot_ord - 365 * 25, hi=self.snapshot_ord - 400,
            closed_parent=None, leaf=False, address=address, virtual=virtual,
            fax=self.rng.random() < 0.1, cvr=cvr, p_close=p_close)
        return first, to

    def end_owner(self) -> None:
        self.w(f"{T[1]}</InstitutionOwnerEntity>\n")

    # -- sectors -------------------------------------------------------------------------

    def region(self, rcode: str, budget: int) -> None:
        r = self.rng
        name, street, number, pc, district, kommune, domain = REGIONS[rcode]
        addr = self.address(kommune, street, number, (pc, district))
        first, to = self.owner(name, OWNER_REGION, addr, self.cvr(), domain, 1.0, 1.0)
        hospitals = HOSPITALS[rcode]
        rest = budget - 1
        n_h = max(1, min(len(hospitals), rest // 60))
        chosen = hospitals[:n_h]
        weights = [h[4] * r.uniform(0.8, 1.25) for h in chosen]
        sw = sum(weights)
        sizes = [max(1, int(rest * x / sw)) for x in weights]
        sizes[0] += rest - sum(sizes)
        for (shak, hname, abbr, hkommune, _, htype), size in zip(chosen, sizes, strict=True):
            if size <= 0:
                continue
            haddr = self.address(hkommune)
            hdomain = _slug(abbr) + "." + domain
            ctx = {
                "name": _hospital_oe, "p_addr": 0.35, "p_virtual": 0.45, "p_gln": 0.08,
                "max_depth": 6, "alpha": 1.3, "domain": hdomain,
                "si_spec": {"abbr": abbr, "hospital_shak": shak, "dept_i": [0],
                            "kommune": hkommune},
            }
            self.si(2, size, {
                "name": hname, "etype": htype, "address": haddr, "shak": shak,
                "visiting": True, "virtual": (f"{_slug(abbr)}@{domain}", f"www.{hdomain}"),
                "gln": self.gln(), "fax": r.random() < 0.3,
            }, ctx, lambda n: max(1, min(n, round(math.sqrt(n) * r.uniform(0.8, 1.3)))),
                lo=first, closed_parent=to, inherit=addr)
        self.end_owner()

    def municipality(self, kommune: str, budget: int) -> None:
        r = self.rng
        m = self.muni[kommune]
        kname = m[1]
        if kommune == "0101":
            iename = "Københavns Kommune"
        elif kommune == "0400":
            iename = "Bornholms Regionskommune"
        else:
            iename = f"{kname} Kommune"
        domain = _slug(kname) + ".dk"
        addr = self.address(kommune, "Rådhuspladsen" if r.random() < 0.5 else "Torvet", "1")
        first, to = self.owner(iename, OWNER_MUNICIPALITY, addr, self.cvr(), domain, 1.0, 1.0)
        rest = budget - 1
        n_si = max(1, min(rest, round(rest / r.uniform(5.0, 7.0))))
        sizes = _split(r, rest, n_si, 1.6) if rest > 0 else []
        kinds = MUNICIPAL_SI
        total_w = sum(k[1] for k in kinds)
        for size in sizes:
            x = r.random() * total_w
            for kind in kinds:
                x -= kind[1]
                if x <= 0:
                    break
            stype, _, patterns, oetype = kind
            p = r.choice(PLACES)
            name = r.choice(patterns).format(p=p, k=kname, d=r.choice(DISTRICTS))
            saddr = self.address(kommune)
            virtual = self.virtual_for(name, domain, 0.7, 0.25) if r.random() < 0.85 else None
            ctx = {
                "name": _municipal_oe, "p_addr": 0.45, "p_virtual": 0.35, "p_gln": 0.0,
                "max_depth": 4, "alpha": 1.5, "domain": domain,
                "si_spec": {"oetype": oetype, "place": p},
            }
            self.si(2, size, {
                "name": name, "etype": stype, "address": saddr if r.random() < 0.97 else None,
                "codes": r.random() < 0.95, "visiting": r.random() < 0.25, "virtual": virtual,
                "gln": self.gln() if r.random() < 0.3 else None,
            }, ctx, lambda n: max(1, min(n, round(math.sqrt(n) * r.uniform(0.7, 1.6)))),
                lo=first, closed_parent=to, inherit=addr)
        self.end_owner()

    def state(self, index: int, budget: int) -> None:
        r = self.rng
        name, kommune, street, number, sis = STATE_OWNERS[index % len(STATE_OWNERS)]
        if index >= len(STATE_OWNERS):
            name = f"{name} {index // len(STATE_OWNERS) + 1}"
        domain = _slug(name) + ".dk"
        addr = self.address(kommune, street, number)
        first, to = self.owner(name, OWNER_STATE, addr, self.cvr(), domain, 1.0, 1.0)
        rest = budget - 1
        n_si = max(1, min(rest, len(sis) + rest // 40))
        sizes = _split(r, rest, n_si, 1.6) if rest > 0 else []
        for i, size in enumerate(sizes):
            stype, sname = sis[i % len(sis)]
            if i >= len(sis):
                sname = f"{sname} {i // len(sis) + 1}"
            ctx = {
                "name": _municipal_oe, "p_addr": 0.5, "p_virtual": 0.4, "p_gln": 0.0,
                "max_depth": 3, "alpha": 1.5, "domain": domain,
                "si_spec": {"oetype": stype, "place": r.choice(PLACES)},
            }
            self.si(2, size, {
                "name": sname, "etype": stype, "address": self.address(self.pick_municipality()),
                "virtual": self.virtual_for(sname, domain, 0.6, 0.3),
                "gln": self.gln() if r.random() < 0.5 else None,
            }, ctx, lambda n: max(1, min(n, round(math.sqrt(n)))), lo=first, closed_parent=to,
                inherit=addr)
        self.end_owner()

    def private(self, n_oe: int) -> None:
        """One private owner: IE + SI + ``n_oe`` providers carrying a ydernummer."""
        r = self.rng
        x = r.random() * _PRIVATE_TOTAL
        for kind in PRIVATE_KINDS:
            x -= kind[1]
            if x <= 0:
                break
        stype, _, owner_pats, clinic_pats, provider_pats, specs = kind
        kommune = self.pick_municipality()
        m = self.muni[kommune]
        addr = self.address(kommune)
        f1, l1 = self.person()
        town = r.choice(m[6])[1]
        place = r.choice(PLACES)
        fmt = {"n": f"{f1} {l1}", "l": l1, "l2": r.choice(LAST), "s": addr[0], "t": town,
               "p": place}
        oname = r.choice(owner_pats).format(**fmt)
        cname = r.choice(clinic_pats).format(**fmt)
        domain = _slug(cname) + ".dk"
        if r.random() < 0.3:
            domain = "gmail.com"
        first, to = self.owner(oname, OWNER_PRIVATE, addr, self.cvr(), domain, 0.6, 0.4,
                               p_close=0.012)
        if specs is None:
            spec_codes = (r.choice(SPECIALIST_SPECS),)
        else:
            spec_codes = specs
        self.w(f"{T[2]}<HealthInstitutionEntity>\n")
        clinic_yder = self.ydernummer() if stype == "394761003" and r.random() < 0.3 else None
        _, sfirst, sto = self.entity(
            "SI", 3, cname, stype, lo=first, hi=to or self.snapshot_ord - 1, closed_parent=to,
            leaf=False, address=addr, codes=r.random() < 0.97, visiting=r.random() < 0.3,
            virtual=self.virtual_for(cname, domain, 0.6, 0.5) if r.random() < 0.9 else None,
            gln=self.gln() if r.random() < 0.25 else None, yder=clinic_yder)
        for i in range(n_oe):
            item = self._next_item
            drop_here = self.is_dropped(item)
            if drop_here:
                self._suppress += 1
                self.stats["dropped"] += 1
            self.w(f"{T[3]}<OrganizationalUnitEntity>\n")
            if i == 0 and n_oe == 1 and r.random() < 0.5:
                pname = oname
            else:
                pf, pl = (f1, l1) if i == 0 else self.person()
                pname = r.choice(provider_pats).format(
                    n=f"{pf} {pl}", l=pl, l2=pl, s=addr[0], t=town, p=place)
            yder = clinic_yder if (i == 0 and clinic_yder) else self.ydernummer()
            own_addr = r.random() < 0.3
            self.entity(
                "OE", 4, pname, stype, lo=sfirst, hi=sto or self.snapshot_ord - 1,
                closed_parent=sto, leaf=True,
                address=addr if own_addr else None,
                codes=r.random() < 0.9,
                virtual=self.virtual_for(pname, domain, 0.5, 0.0) if r.random() < 0.3 else None,
                yder=yder, specs=spec_codes)
            self.w(f"{T[3]}</OrganizationalUnitEntity>\n")
            if drop_here:
                self._suppress -= 1
        self.w(f"{T[2]}</HealthInstitutionEntity>\n")
        self.end_owner()


_PRIVATE_TOTAL = sum(k[1] for k in PRIVATE_KINDS)


def _hospital_oe(g: _Gen, depth: int, parent: dict) -> dict:
    """Name, type, SHAK code and specialities of a hospital unit at ``depth`` (1 = department)."""
    r = g.rng
    abbr = parent["abbr"]
    out = {"abbr": abbr, "hospital_shak": parent["hospital_shak"], "dept_i": parent["dept_i"],
           "kommune": parent.get("kommune")}
    if depth == 1:
        dname, specs, dtype = r.choice(DEPARTMENTS)
        i = parent["dept_i"][0] + 1
        parent["dept_i"][0] = i
        shak = None
        if i < len(ALNUM) * 10:
            shak = f"{parent['hospital_shak']}{ALNUM[i // 10]}{i % 10}"
        out.update(name=f"{abbr} {dname}", type=dtype, shak=shak, dept_shak=shak,
                   dname=dname, sec_i=[0], specs=specs if r.random() < 0.8 else ())
        return out
    dept_shak = parent.get("dept_shak")
    out.update(dept_shak=dept_shak, dname=parent.get("dname", ""), sec_i=parent.get("sec_i"))
    if depth == 2:
        sec = r.choice(SECTIONS)
        n = r.randint(1, 9) * 10 + r.randint(1, 9)
        label = f"{sec} {n}" if sec in ("Sengeafsnit", "Ambulatorium") else sec
        shak = None
        sec_i = parent.get("sec_i")
        if dept_shak and sec_i is not None and sec_i[0] < len(ALNUM) - 1:
            sec_i[0] += 1
            shak = dept_shak + ALNUM[sec_i[0]]
        out.update(label=label, name=f"{abbr} {parent.get('dname', '')}, {label}", type=r.choice(
            HOSPITAL_SUBTYPES), shak=shak, section_shak=shak,
            specs=(r.choice(DEPARTMENTS)[1][:1] if r.random() < 0.3 else ()))
        return out
    sub = r.choice(SUBUNITS)
    tail = f"{sub} {r.choice(COLOURS) if r.random() < 0.5 else r.randint(1, 12)}"
    section_shak = parent.get("section_shak")
    out.update(label=parent.get("label", ""),
               name=f"{abbr} {parent.get('label') or parent.get('dname', '')}, {tail}",
               type=r.choice(HOSPITAL_SUBTYPES), section_shak=section_shak,
               shak=section_shak if section_shak and r.random() < 0.25 else None)
    return out


def _municipal_oe(g: _Gen, depth: int, parent: dict) -> dict:
    r = g.rng
    pat = r.choice(MUNICIPAL_OE)
    name = pat.format(p=r.choice(PLACES), d=r.choice(DISTRICTS), c=r.choice(COLOURS),
                      n=r.randint(1, 20))
    if depth == 1 and r.random() < 0.5:
        name = f"{parent['place']}, {name}" if "place" in parent else name
    oetype = parent.get("oetype", "550811000005108")
    return {"name": name, "type": oetype if r.random() < 0.85 else "550811000005108",
            "oetype": oetype, "place": parent.get("place", "")}


# --- planning and the public function -----------------------------------------------------


def _plan(entities: int, seed: int, municipalities: int | None, regions: int | None,
          private_share: float, state_owners: int | None) -> dict:
    """Decide how many entities each owner gets (sums to exactly ``entities``)."""
    if entities < 3:
        raise ValueError("entities must be at least 3")
    if not 0.0 <= private_share <= 1.0:
        raise ValueError("private_share must be within 0..1")
    rng = random.Random(seed * 7919 + 17)
    n = entities
    if regions is None:
        regions = 5 if n >= 5000 else (1 if n >= 1000 else 0)
    regions = max(0, min(5, regions))
    if municipalities is None:
        municipalities = max(1, min(98, round(98 * n / 200_000)))
    municipalities = max(0, min(98, municipalities))
    if state_owners is None:
        state_owners = 3 if n >= 20_000 else (1 if n >= 2000 else 0)

    region_budget = round(n * 0.13 * regions / 5) if regions else 0
    if regions:
        region_budget = max(region_budget, regions * 3)
    state_budget = max(round(n * 0.005), 4 * state_owners) if state_owners else 0
    private_budget = round(n * private_share)
    muni_budget = n - region_budget - state_budget - private_budget
    if muni_budget < 0:
        private_budget += muni_budget
        muni_budget = 0
        if private_budget < 0:
            raise ValueError("too few entities for the requested shape")
    if municipalities == 0 or muni_budget < 3 * municipalities:
        private_budget += max(0, muni_budget)
        muni_budget = 0
        municipalities = 0
    if 0 < private_budget < 3:  # too few for a private owner: give them to another owner
        if muni_budget:
            muni_budget += private_budget
        elif region_budget:
            region_budget += private_budget
        elif state_budget:
            state_budget += private_budget
        else:
            raise ValueError("too few entities for the requested shape")
        private_budget = 0
    if private_budget < 0:
        raise ValueError("too few entities for the requested shape")
    if private_budget == 0 and muni_budget == 0 and region_budget == 0 and state_budget == 0:
        raise ValueError("nothing to generate")

    # Private owners: IE + SI + 1..3 OEs each, exactly private_budget in all.
    private: list[int] = []
    left = private_budget
    while left > 0:
        if left <= 5:
            k = left - 2
        else:
            k = rng.choices((1, 2, 3), (0.5, 0.3, 0.2))[0]
            if left - (2 + k) < 3:  # never leave 1 or 2 over
                k = 1
        private.append(k)
        left -= 2 + k

    # Municipalities: budgets proportional to population, clipped to a 1:3 range.
    codes = sorted(rng.sample([m[0] for m in MUNICIPALITIES], municipalities))
    # Weight by population rank, spread evenly over 0.53..1.41 (mean ~1): at 200,000
    # entities every municipality gets 500-1,500 units, the biggest the most.
    pops = {m[0]: m[3] for m in MUNICIPALITIES}
    by_pop = sorted(codes, key=lambda c: pops[c])
    rank = {c: i / max(1, len(codes) - 1) for i, c in enumerate(by_pop)}
    weights = [(0.53 + 0.88 * rank[c] if len(codes) > 1 else 1.0) * rng.uniform(0.98, 1.02)
               for c in codes]
    sw = sum(weights) or 1.0
    # At least 3 each (owner, institution, unit); the rest by weight.
    muni_sizes = [3 + int((muni_budget - 3 * len(codes)) * x / sw) for x in weights]
    for i in range(muni_budget - sum(muni_sizes)):
        muni_sizes[i % len(muni_sizes)] += 1
    region_codes = sorted(REGIONS)[:regions] if regions < 5 else sorted(REGIONS)
    if regions and regions < 5:
        region_codes = sorted(rng.sample(sorted(REGIONS), regions))
    # Hospital activity roughly follows the regions' populations.
    rw = {"1081": 0.6, "1082": 1.2, "1083": 1.1, "1084": 1.6, "1085": 0.7}
    rsum = sum(rw[c] for c in region_codes)
    region_sizes = [max(3, int(region_budget * rw[c] / rsum)) for c in region_codes]
    if region_sizes:
        region_sizes[0] += region_budget - sum(region_sizes)
    state_sizes = [state_budget // state_owners] * state_owners if state_owners else []
    if state_sizes:
        state_sizes[0] += state_budget - sum(state_sizes)
    return {"regions": list(zip(region_codes, region_sizes, strict=True)),
            "states": state_sizes,
            "municipalities": list(zip(codes, muni_sizes, strict=True)),
            "private": private}


def _generate(path: str | os.PathLike, entities: int, seed: int = 1,
              municipalities: int | None = None, regions: int | None = None,
              private_share: float = 0.37, *, state_owners: int | None = None,
              mutate: float = 0.0, drop: float = 0.0,
              snapshot_date: dt.date | None = None) -> tuple[dict, dict]:
    plan = _plan(entities, seed, municipalities, regions, private_share, state_owners)
    snapshot = snapshot_date or dt.date(2025, 1, 15)
    export_date = snapshot
    if mutate or drop:
        export_date = snapshot + dt.timedelta(days=7)  # the changed variant is a later export
    with open(path, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as fh:
        g = _Gen(fh, seed, mutate, drop, snapshot, export_date)
        fh.write('\ufeff<?xml version="1.0" encoding="utf-8"?>\n')
        fh.write(ROOT_OPEN + "\n")
        fh.write(f"\t<sor1:CreatedAtTime>{export_date.isoformat()}T01:00:29.6269718+01:00"
                 f"</sor1:CreatedAtTime>\n")
        fh.write(f"\t<sor1:SnapshotDate>{export_date.isoformat()}</sor1:SnapshotDate>\n")
        for rcode, size in plan["regions"]:
            g.region(rcode, size)
        for i, size in enumerate(plan["states"]):
            g.state(i, size)
        for kommune, size in plan["municipalities"]:
            g.municipality(kommune, size)
        for k in plan["private"]:
            g.private(k)
        fh.write("</SorTree>\n")
    stats = dict(g.stats)
    stats["private_owners"] = len(plan["private"])
    stats["municipalities"] = len(plan["municipalities"])
    stats["regions"] = len(plan["regions"])
    stats["state_owners"] = len(plan["states"])
    return dict(g.counts), stats


def generate(path: str | os.PathLike, entities: int, seed: int = 1,
             municipalities: int | None = None, regions: int | None = None,
             private_share: float = 0.37, *, state_owners: int | None = None,
             mutate: float = 0.0, drop: float = 0.0,
             snapshot_date: dt.date | None = None) -> dict:
    """Write a synthetic SOR XML v2.0.0 export of ``entities`` entities to ``path``.

    ``municipalities`` (0-98) and ``regions`` (0-5) default to the real register's shape
    scaled to ``entities``; ``private_share`` is the share of entities under private owners
    (about 100 private owners per 1,000 entities at the default). ``mutate`` and ``drop``
    (fractions) make the changed variant of the same register for re-import tests.
    Returns the number of entities written per level: ``{"IE": .., "SI": .., "OE": ..}``.
    """
    counts, _ = _generate(path, entities, seed, municipalities, regions, private_share,
                          state_owners=state_owners, mutate=mutate, drop=drop,
                          snapshot_date=snapshot_date)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="the XML file to write")
    p.add_argument("--entities", type=int, default=200_000, help="entities (default 200000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--municipalities", type=int, default=None, help="0-98 (default: scaled)")
    p.add_argument("--regions", type=int, default=None, help="0-5 (default: scaled)")
    p.add_argument("--state-owners", type=int, default=None)
    p.add_argument("--private-share", type=float, default=0.37,
                   help="share of entities under private owners (default 0.37)")
    p.add_argument("--mutate", type=float, default=0.0, metavar="FRACTION",
                   help="change names/phones of this fraction of entities")
    p.add_argument("--drop", type=float, default=0.0, metavar="FRACTION",
                   help="leave out this fraction of OE subtrees")
    p.add_argument("--snapshot-date", type=dt.date.fromisoformat, default=None,
                   help="SnapshotDate (default 2025-01-15; +7 days for a changed variant)")
    a = p.parse_args(argv)
    for name in ("mutate", "drop"):
        if not 0.0 <= getattr(a, name) <= 1.0:
            p.error(f"--{name} must be within 0..1")
    t0 = time.perf_counter()
    try:
        counts, stats = _generate(
            a.out, a.entities, a.seed, a.municipalities, a.regions, a.private_share,
            state_owners=a.state_owners, mutate=a.mutate, drop=a.drop,
            snapshot_date=a.snapshot_date)
    except ValueError as e:
        p.error(str(e))
    secs = time.perf_counter() - t0
    size = os.path.getsize(a.out)
    total = sum(counts.values())
    print(f"wrote {a.out}: {total} entities in {secs:.1f} s, {size / 1e6:.1f} MB")
    print(f"  IE {counts['IE']}  SI {counts['SI']}  OE {counts['OE']}")
    print("  owners: {regions} regions, {state_owners} state, {municipalities} municipalities, "
          "{private_owners} private".format(**stats))
    print("  closed {closed}, replaced {replaced}, with SHAK {shak}, with ydernummer "
          "{ydernummer}, GLNs {gln}, mutated {mutated}, dropped {dropped}".format(**stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
