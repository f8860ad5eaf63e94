#!/usr/bin/env python3
"""Writes belfiore.tsv, the Belfiore (cadastral) codes of Italian
municipalities and foreign states with their validity periods, from the
public data shipped by the `python-codicefiscale` package on PyPI (itself
compiled from ANPR/ISTAT and Agenzia delle Entrate tables).

Usage: pip install python-codicefiscale==0.12.1 && python3 generate.py
"""
import json
import pathlib
import sys

import codicefiscale

source = pathlib.Path(codicefiscale.__file__).parent / "data"
rows = []
for name in ("municipalities.json", "countries.json"):
    for entry in json.loads((source / name).read_text(encoding="utf-8")):
        code = entry["code"].strip().upper()
        if len(code) != 4 or not code[0].isalpha() or not code[1:].isdigit():
            continue  # placeholders such as "ND"
        start = (entry.get("date_created") or "")[:10]
        end = (entry.get("date_deleted") or "")[:10]
        place = entry["name"].replace("\t", " ").strip()
        rows.append((code, start, end, entry.get("province", ""), place))
rows = sorted(set(rows))
out = pathlib.Path(__file__).with_name("belfiore.tsv")
with out.open("w", encoding="utf-8") as f:
    f.write(f"# Belfiore codes: code, valid from, valid until (last day, inclusive; empty: still valid), province (EE: foreign), name.\n")
    f.write(f"# Source: python-codicefiscale {codicefiscale.__version__} (PyPI) data files; regenerate with generate.py.\n")
    for row in rows:
        f.write("\t".join(row) + "\n")
print(f"{len(rows)} codes written to {out}", file=sys.stderr)
