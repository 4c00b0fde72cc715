"""The XML mapping options (issue 16) against the old pair's library, byte for byte.

The oracle is dicttoxml 1.7.4 (what json2xml 3.6.0 vendored) from ../shared/oracles, run here by
Debian's Python: dicttoxml(data, custom_root=XML_ROOT, attr_type=XML_TYPE_ATTRS,
item_func=lambda parent: XML_ITEM_NAME, cdata=XML_CDATA), then, for XML_PRETTY=on,
minidom.parseString(...).toprettyxml(), as json2xml did; its own bytes for XML_PRETTY=off.
What 1.7.4 lacks is taken as the later releases define it:
  - XML_DECLARATION=off: the same document without its declaration (pretty: without that line);
  - XML_ITEM_WRAP=off: a list that is the value of key K writes no element of its own, each
    member written as {K: member} would be (a member that is itself a list keeps its element,
    named K, with item members); an empty list stays <K type="list"/>. Done here by running
    1.7.4's convert_dict on {K: member} for each member.
Where our converter chose (the library crashed): a scalar document is one item, as the
one-member list [scalar] is; characters XML 1.0 cannot carry become U+FFFD first.
Where the library writes XML that is not well-formed (a number-like key whose `n` name is no
XML name holding a dict or list: <n²>), only ours is checked, for well-formedness.

Every document of the golden corpus (tests/testdata/json2xml) and of a generated corpus is
converted with every combination of the five on/off options, with the default names and with
custom ones (2**5 * 2 = 64 combinations), by json2xml_tool --batch (one run per combination).
"""

import collections
import collections.abc
import itertools
import json
import logging
import os
import random
import re
import subprocess
import sys
import unittest
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from xml.dom import minidom

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TOOL = os.environ.get("JSON2XML_TOOL", str(ROOT / "build" / "bin" / "json2xml_tool"))
TESTDATA = Path(os.environ.get("TRANSFER_TESTDATA", str(ROOT / "tests" / "testdata")))
ORACLE_DIR = Path(os.environ.get("DICTTOXML_ORACLE", str(ROOT.parent / "shared" / "oracles" / "dicttoxml-1.7.4")))

PRETTY_DECLARATION = b'<?xml version="1.0" ?>\n'
COMPACT_DECLARATION = b'<?xml version="1.0" encoding="UTF-8" ?>'


def load_oracle():
    """dicttoxml 1.7.4, with the two lines its README asks for before the import."""
    if not (ORACLE_DIR / "dicttoxml.py").is_file():
        raise FileNotFoundError(f"the oracle is missing: {ORACLE_DIR}/dicttoxml.py (shared/ beside the clone)")
    collections.Iterable = collections.abc.Iterable
    logging.disable(logging.CRITICAL)
    sys.path.insert(0, str(ORACLE_DIR))
    import dicttoxml  # noqa: E402  (needs the lines above)
    assert dicttoxml.__version__ == "1.7.4", dicttoxml.__version__
    return dicttoxml


# ---------------------------------------------------------------------------------------------
# Options: (root, item_name) x the five switches.
NAMES = [("all", "item"), ("order", "line")]
SWITCHES = ["type_attrs", "item_wrap", "pretty", "declaration", "cdata"]


def combinations():
    for (root, item), values in itertools.product(NAMES, itertools.product([True, False], repeat=5)):
        opts = dict(zip(SWITCHES, values))
        opts.update(root=root, item_name=item)
        yield opts


def label(opts):
    on = lambda b: "on" if b else "off"  # noqa: E731
    return " ".join([f"root={opts['root']}", f"item={opts['item_name']}"] +
                    [f"{k}={on(opts[k])}" for k in SWITCHES])


def tool_flags(opts):
    on = lambda b: "on" if b else "off"  # noqa: E731
    return [f"--root={opts['root']}", f"--item-name={opts['item_name']}",
            f"--type-attrs={on(opts['type_attrs'])}", f"--item-wrap={on(opts['item_wrap'])}",
            f"--pretty={on(opts['pretty'])}", f"--declaration={on(opts['declaration'])}",
            f"--cdata={on(opts['cdata'])}"]


# ---------------------------------------------------------------------------------------------
# The oracle.
INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def clean(value):
    """Characters XML 1.0 cannot carry become U+FFFD (our rule, before the mapping)."""
    if isinstance(value, str):
        return INVALID_XML_CHARS.sub("\ufffd", value)
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    return value


class Oracle:
    def __init__(self):
        self.lib = load_oracle()
        self.convert_dict = self.lib.convert_dict
        self.raw_cache = {}

    def _unwrapped_convert_dict(self, obj, ids, parent, attr_type, item_func, cdata):
        """1.7.4's convert_dict with the later releases' item_wrap=False."""
        out = []
        for key, val in obj.items():
            members = val if isinstance(val, list) and val else [val]
            for member in members:
                out.append(self.convert_dict({key: member}, ids, parent, attr_type, item_func, cdata))
        return "".join(out)

    def raw(self, doc_id, data, opts):
        """dicttoxml's own bytes (cached: pretty and declaration do not change them)."""
        key = (doc_id, opts["root"], opts["item_name"], opts["type_attrs"], opts["cdata"], opts["item_wrap"])
        if key not in self.raw_cache:
            item = opts["item_name"]
            if not opts["item_wrap"]:
                self.lib.convert_dict = self._unwrapped_convert_dict
            try:
                self.raw_cache[key] = self.lib.dicttoxml(
                    data, custom_root=opts["root"], attr_type=opts["type_attrs"],
                    item_func=lambda parent: item, cdata=opts["cdata"])
            finally:
                self.lib.convert_dict = self.convert_dict
        return self.raw_cache[key]

    def expected(self, doc_id, data, opts):
        """The oracle's bytes, or None where they are not well-formed XML."""
        if not isinstance(data, (dict, list)):
            data = [data]  # a scalar document: one item (the library crashes on it)
        raw = self.raw(doc_id, data, opts)
        try:
            parsed = minidom.parseString(raw)
        except Exception:  # expat's ExpatError: not well-formed
            return None
        if opts["pretty"]:
            out = parsed.toprettyxml().encode("utf-8")
            assert out.startswith(PRETTY_DECLARATION)
            return out if opts["declaration"] else out[len(PRETTY_DECLARATION):]
        assert raw.startswith(COMPACT_DECLARATION)
        return raw if opts["declaration"] else raw[len(COMPACT_DECLARATION):]


# ---------------------------------------------------------------------------------------------
# The corpora.
def golden_corpus():
    docs = []
    for path in sorted((TESTDATA / "json2xml" / "inputs").glob("*.json")):
        docs.append(("golden/" + path.stem, path.read_bytes()))
    return docs


HANDWRITTEN = [
    {"id": 7, "note": "a & b", "line": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": None}]},  # README
    {"a": 1, "b": "two", "c": None, "d": True, "e": False, "f": 1.5},
    [1, "two", None, True, False, 2.5, {}, []],
    {"order": {"line": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}]}},
    {"matrix": [[1, 2], [3, [4, []]], [], [{}]]},
    {"empty_list": [], "empty_dict": {}, "empty_str": "", "nested": {"x": {"y": {"z": []}}}},
    {"item": ["item", {"item": [None]}], "line": [1], "order": {"order": 2}},
    {"ints": [0, -0, 7, -7, 9007199254740993, 123456789012345678901234567890, -18446744073709551617],
     "floats": [0.0, -0.0, 1e16, 1e15, 1e-05, 0.0001, 1.5e300, -2.5e-08, 1E2, 1.0, 123.456, 5e-324]},
    {"escapes": "a & b < c > d \" e ' f", "slash": "\\/", "tab": "a\tb", "nl": "a\nb", "cr": "a\rb",
     "crlf": "a\r\nb\r\n", "cdata_end": "x]]>y", "two_ends": "]]>]]>", "brackets": "]] > ]]]>>",
     "only_end": "]]>", "cdata_open": "<![CDATA[ x ]]>"},
    {"unicode": "\u00e9\u00e8 \u6771\u4eac \U0001F680 \u05e9\u05dc\u05d5\u05dd \u200f\u2028\u0085",
     "\u00e9t\u00e9": "summer", "\u6771": "east", "\U0001F680": "rocket", "caf\u00e9 cr\u00e8me": 1},
    {"1": "one", "01": "zero one", "1.5": "dot", "-1": "minus", "1e3": "exp", "\u0663": "arabic three",
     "\u00b2": "superscript", "\u00b2\u00b3": {"nested": 1}, "\u2460": [1, 2], "12 34": "space",
     "123abc": "mixed"},
    {"a b": 1, " lead": 2, "trail ": 3, "tab\tkey": 4, "trail\t": 5, "a&b": 6, "x:y": 7,
     "xml:lang": "en", "xmlns": "ns", "": "empty", "-bad": 8, ".dot": 9, "a.b": 10, "a-b": 11,
     "<tag>": 12, "quote\"": 13, "apos'": 14, "a b ": {"c d": [1]}, "line\nbreak": 15,
     "cr\rkey": 16, "semi;colon": 17},
    {"\u00b2": [{"a": 1}], "\u00b9": {"b": None}, "\u00b3": None, "\u2460": True},
    {"dup": 1, "list": [1, 2], "dup": [3, {"dup": "x", "dup": "y"}], "tail": []},
    {"outer": {"k": [1], "k": [[], [2]], "j": {"q": "]]>"}}},
    [[1, 2], [[3]], [], {"a": [[], [1]]}],
    "a top-level string ]]> & <",
    12345,
    -0.5,
    None,
    True,
    "",
    {"long": "x" * 70000, "after": [1, 2, 3]},
    {"controls": "a\u0001b\u001fc\ufffed", "\u0007bell": "key with a control"},
]


def generated_corpus(count=60, seed=16):
    """Random documents built from the interesting pieces (fixed seed: the same every run)."""
    rnd = random.Random(seed)
    keys = ["a", "b", "name", "item", "line", "1", "02", "1.5", "-3", "a b", "trail ", " lead", "x:y",
            "a&b", "\u00e9", "\u6771", "\U0001F680", "\u00b2", "\u0663", "", "k-1", "k.2", "_u",
            "xml:id", "quote\"", "tab\tin", "CamelCase"]
    strings = ["", "plain", "a & b", "<x/>", "\"q\"", "'s'", "]]>", "a]]>b]]>c", "line\nbreak",
               "cr\rlf\r\n", "\t tabs \t", " ", "\u00e9\u00e8", "\U0001F680", "\u2028", "10", "True",
               "null", "x]]", ">y"]
    numbers = [0, 1, -1, 42, 2**63, -(2**63) - 1, 10**30, 0.5, -0.0, 1e-7, 1e21, 3.14159, 2.0]

    def value(depth):
        kind = rnd.randrange(10 if depth < 5 else 6)
        if kind == 0:
            return None
        if kind == 1:
            return rnd.choice([True, False])
        if kind in (2, 3):
            return rnd.choice(numbers)
        if kind in (4, 5):
            return rnd.choice(strings)
        if kind in (6, 7):
            return {rnd.choice(keys): value(depth + 1) for _ in range(rnd.randrange(5))}
        return [value(depth + 1) for _ in range(rnd.randrange(5))]

    docs = []
    for i in range(count):
        top = rnd.choice(["dict", "dict", "dict", "list", "scalar"])
        if top == "dict":
            doc = {rnd.choice(keys): value(1) for _ in range(1 + rnd.randrange(6))}
        elif top == "list":
            doc = [value(1) for _ in range(rnd.randrange(6))]
        else:
            doc = value(5)
        docs.append((f"generated/{i:02d}", json.dumps(doc, ensure_ascii=rnd.random() < 0.5).encode()))
    return docs


def handwritten_corpus():
    docs = []
    for i, doc in enumerate(HANDWRITTEN):
        text = json.dumps(doc, ensure_ascii=False)
        docs.append((f"handwritten/{i:02d}", text.encode()))
    # Duplicate keys (json.dumps cannot write them): the in-memory path, Python's dict rule.
    docs.append(("handwritten/dup_keys",
                 b'{"k": [1, 2], "k": [3], "o": {"x": 1, "y": [], "x": [{"z": 1, "z": [2]}]}, "e": []}'))
    docs.append(("handwritten/number_texts", b'[1E2, -0, 1e+2, 0.1e1, -0.0, 1.0e-7, 100000000000000000000000, 1E-400]'))
    docs.append(("handwritten/dup_in_list", b'[{"a": 1, "a": {"b": "]]>"}}, [{"c": [], "c": [[]]}]]'))
    return docs


def run_tool(opts, docs):
    """Our bytes for each document with `opts` (one json2xml_tool --batch run)."""
    stdin = b"".join(str(len(body)).encode() + b"\n" + body for _, body in docs)
    proc = subprocess.run([TOOL, "--batch"] + tool_flags(opts), input=stdin, capture_output=True,
                          timeout=120, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"json2xml_tool {label(opts)} exited {proc.returncode}: {proc.stderr!r}")
    out, pos, results = proc.stdout, 0, []
    for _ in docs:
        nl = out.index(b"\n", pos)
        status, length = out[pos:nl].split(b" ")
        body = out[nl + 1:nl + 1 + int(length)]
        pos = nl + 1 + int(length)
        results.append((status == b"ok", body))
    assert pos == len(out), "trailing bytes from json2xml_tool"
    return results


def is_well_formed(xml_bytes):
    try:
        minidom.parseString(xml_bytes)
        return True
    except Exception:
        return False


class XmlMappingAgainstDicttoxml(unittest.TestCase):
    def test_every_document_with_every_combination(self):
        oracle = Oracle()
        docs = golden_corpus() + handwritten_corpus() + generated_corpus()
        parsed = [clean(json.loads(body)) for _, body in docs]
        combos = list(combinations())
        with ThreadPoolExecutor(max_workers=4) as pool:
            ours_by_combo = list(pool.map(lambda o: run_tool(o, docs), combos))

        compared = not_well_formed = 0
        failures = []
        for opts, ours in zip(combos, ours_by_combo):
            for (doc_id, _), data, (ok, body) in zip(docs, parsed, ours):
                where = f"{doc_id} [{label(opts)}]"
                if not ok:
                    failures.append(f"{where}: refused: {body.decode(errors='replace')}")
                    continue
                want = oracle.expected(doc_id, data, opts)
                if want is None:
                    not_well_formed += 1
                    if not is_well_formed(body):
                        failures.append(f"{where}: ours is not well-formed either:\n{body[:2000]!r}")
                    continue
                compared += 1
                if body != want:
                    at = next((i for i in range(min(len(body), len(want))) if body[i] != want[i]),
                              min(len(body), len(want)))
                    failures.append(f"{where}: differs at byte {at}:\n ours   {body[max(0, at - 80):at + 80]!r}"
                                    f"\n oracle {want[max(0, at - 80):at + 80]!r}")
        print(f"\nxml mapping: {len(docs)} documents x {len(combos)} combinations: {compared} compared "
              f"byte for byte, {compared - sum(1 for f in failures if 'differs' in f)} equal; "
              f"{not_well_formed} where the oracle's XML is not well-formed (ours checked "
              f"well-formed)", file=sys.stderr)
        self.assertEqual(failures[:20], [], f"{len(failures)} failures")
        self.assertGreater(compared, 60 * len(combos))

    def test_defaults_are_the_golden_corpus(self):
        defaults = next(c for c in combinations()
                        if c["root"] == "all" and all(c[k] for k in SWITCHES if k != "cdata") and not c["cdata"])
        docs = golden_corpus()
        for (doc_id, _), (ok, body) in zip(docs, run_tool(defaults, docs)):
            expected = (TESTDATA / "json2xml" / "expected" / (doc_id.split("/")[1] + ".xml")).read_bytes()
            self.assertTrue(ok, doc_id)
            self.assertEqual(body, expected, doc_id)

    def test_invalid_names_refuse_to_start(self):
        for flag, value in [("--root", "1st"), ("--root", "a b"), ("--item-name", "x:y"), ("--item-name", ""),
                            ("--root", "<all>"), ("--item-name", "\u00b2")]:
            proc = subprocess.run([TOOL, f"{flag}={value}"], input=b"{}", capture_output=True, check=False)
            self.assertEqual(proc.returncode, 2, (flag, value))
            option = "XML_ROOT" if flag == "--root" else "XML_ITEM_NAME"
            self.assertIn(f"{option}: ", proc.stderr.decode(), (flag, value))
            self.assertEqual(proc.stderr.count(b"\n"), 1, proc.stderr)


if __name__ == "__main__":
    unittest.main()
