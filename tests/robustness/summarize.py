"""Failures of a robustness run by class and problem tag, from pytest's JUnit XML.

    python -m pytest tests/robustness --junitxml=rob.xml; python tests/robustness/summarize.py rob.xml [v]

(``v``: also each failing row with its message.)
"""
import sys, re, collections, xml.etree.ElementTree as ET
tree = ET.parse(sys.argv[1])
rows = {}
for tc in tree.iter("testcase"):
    name = tc.get("name")
    m = re.match(r"test_row\[(.*)\]", name) or re.match(r"test_\w+\[(.*)\]", name)
    rid = m.group(1) if m else name
    fail = tc.find("failure") if tc.find("failure") is not None else tc.find("error")
    rows[rid] = None if fail is None else (fail.get("message") or "") + "\n" + (fail.text or "")
by_cls = collections.Counter(); fail_cls = collections.Counter(); tags = collections.defaultdict(collections.Counter)
for rid, msg in rows.items():
    cls = rid.split("-")[0]
    by_cls[cls] += 1
    if msg is not None:
        fail_cls[cls] += 1
        for t in sorted(set([x for x in re.findall(r"\[([a-z][a-z-]+)\]", msg) if x not in ("h",)])):
            tags[cls][t] += 1
print("total", len(rows), "failed", sum(fail_cls.values()))
for c in by_cls:
    print(f"{c:10s} {fail_cls[c]:4d}/{by_cls[c]:4d}  {dict(tags[c])}")
if len(sys.argv) > 2:
    for rid, msg in rows.items():
        if msg is not None:
            print("\n##", rid); print(msg.strip()[:700])
