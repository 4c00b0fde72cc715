#!/usr/bin/env python3
"""Uploads of sender-shaped XML for bench/checks.sh (issue 15: the receiver's XML checks).

  make_xml_upload.py body KEY_FILE SIZE OUT        multipart body for wrk; prints the boundary
  make_xml_upload.py token KEY_FILE SIZE OUT       a Fernet token file (streamed: any SIZE)
  make_xml_upload.py schema OUT                    an XSD the generated documents satisfy
  make_xml_upload.py sign KEY_FILE BODY PREFIX COUNT OUT   signatures as our sender makes them
  make_xml_upload.py post PORT BODY BOUNDARY PREFIX COUNT  COUNT uploads of BODY one after the
                                                           other on one connection; prints non-201s

The plaintext is what our sender writes for {"source": "bench", "records": [record, ...]} with the
record of tests/integration/test_memory.py (dicttoxml's shape: <all>, type attributes, tab
indentation, <item> for list members; checked against the dicttoxml oracle), records added until
it reaches SIZE bytes. The token is made as Fernet makes it (AES-128-CBC, HMAC-SHA256, base64url)
but streamed: OUT never sits in memory, so a 100 MB or 1 GiB token costs a few MiB of RSS.
"""
import base64
import hashlib
import hmac as std_hmac
import os
import struct
import sys
import time

from cryptography.hazmat.primitives import hashes, hmac, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

HEAD = b'<?xml version="1.0" ?>\n<all>\n\t<source type="str">bench</source>\n\t<records type="list">\n'
TAIL = b"\t</records>\n</all>\n"
RECORD = ('\t\t<item type="dict">\n'
          '\t\t\t<id type="int">%d</id>\n'
          '\t\t\t<name type="str">record \u00e9 \u6771\u4eac &lt;&amp;&gt;</name>\n'
          '\t\t\t<score type="float">%d.25</score>\n'
          '\t\t\t<ok type="bool">True</ok>\n'
          '\t\t\t<tags type="list">\n'
          '\t\t\t\t<item type="str">a</item>\n'
          '\t\t\t\t<item type="str">b</item>\n'
          '\t\t\t\t<item type="str">c</item>\n'
          '\t\t\t</tags>\n'
          '\t\t\t<geo type="dict">\n'
          '\t\t\t\t<lat type="float">12.5</lat>\n'
          '\t\t\t\t<lng type="float">-3.75</lng>\n'
          '\t\t\t</geo>\n'
          '\t\t\t<note type="null"/>\n'
          '\t\t</item>\n')
RECORD_FIXED = len((RECORD % (0, 0)).encode()) - 2  # bytes of a record besides its two numbers
BLOCK = 2000  # records per yielded chunk (~0.8 MB)

# One schema for both document shapes: the records above, or <all><blob type="str">text</blob></all>.
SCHEMA = """<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="unqualified">
  <xs:complexType name="str"><xs:simpleContent><xs:extension base="xs:string">
    <xs:attribute name="type" type="xs:string" fixed="str" use="required"/></xs:extension></xs:simpleContent></xs:complexType>
  <xs:complexType name="int"><xs:simpleContent><xs:extension base="xs:integer">
    <xs:attribute name="type" type="xs:string" fixed="int" use="required"/></xs:extension></xs:simpleContent></xs:complexType>
  <xs:complexType name="float"><xs:simpleContent><xs:extension base="xs:decimal">
    <xs:attribute name="type" type="xs:string" fixed="float" use="required"/></xs:extension></xs:simpleContent></xs:complexType>
  <xs:simpleType name="boolWord"><xs:restriction base="xs:string">
    <xs:enumeration value="True"/><xs:enumeration value="False"/></xs:restriction></xs:simpleType>
  <xs:complexType name="bool"><xs:simpleContent><xs:extension base="boolWord">
    <xs:attribute name="type" type="xs:string" fixed="bool" use="required"/></xs:extension></xs:simpleContent></xs:complexType>
  <xs:complexType name="null"><xs:attribute name="type" type="xs:string" fixed="null" use="required"/></xs:complexType>
  <xs:complexType name="record">
    <xs:sequence>
      <xs:element name="id" type="int"/>
      <xs:element name="name" type="str"/>
      <xs:element name="score" type="float"/>
      <xs:element name="ok" type="bool"/>
      <xs:element name="tags">
        <xs:complexType>
          <xs:sequence><xs:element name="item" type="str" minOccurs="0" maxOccurs="unbounded"/></xs:sequence>
          <xs:attribute name="type" type="xs:string" fixed="list" use="required"/>
        </xs:complexType>
      </xs:element>
      <xs:element name="geo">
        <xs:complexType>
          <xs:sequence><xs:element name="lat" type="float"/><xs:element name="lng" type="float"/></xs:sequence>
          <xs:attribute name="type" type="xs:string" fixed="dict" use="required"/>
        </xs:complexType>
      </xs:element>
      <xs:element name="note" type="null"/>
    </xs:sequence>
    <xs:attribute name="type" type="xs:string" fixed="dict" use="required"/>
  </xs:complexType>
  <xs:element name="all">
    <xs:complexType>
      <xs:choice>
        <xs:sequence>
          <xs:element name="source" type="str"/>
          <xs:element name="records">
            <xs:complexType>
              <xs:sequence><xs:element name="item" type="record" minOccurs="0" maxOccurs="unbounded"/></xs:sequence>
              <xs:attribute name="type" type="xs:string" fixed="list" use="required"/>
            </xs:complexType>
          </xs:element>
        </xs:sequence>
        <xs:element name="blob" type="str"/>
      </xs:choice>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""


def _record_count_and_length(target):
    """(records, plaintext bytes) of the smallest document of at least `target` bytes."""
    n, size, digits, next_power = 0, len(HEAD) + len(TAIL), 1, 10
    while size < target:
        if n == next_power:
            digits, next_power = digits + 1, next_power * 10
        size += RECORD_FIXED + 2 * digits
        n += 1
    return n, size


def records_xml(target):
    """(length, chunks): the sender-shaped document of at least `target` bytes, streamed."""
    n, size = _record_count_and_length(target)

    def chunks():
        yield HEAD
        for start in range(0, n, BLOCK):
            yield "".join(RECORD % (i, i) for i in range(start, min(n, start + BLOCK))).encode()
        yield TAIL
    return size, chunks()


def blob_xml(text_bytes):
    """(length, chunks): one element holding `text_bytes` of text (words, no markup)."""
    head, tail = b'<?xml version="1.0" ?>\n<all>\n\t<blob type="str">', b"</blob>\n</all>\n"
    piece = b"lorem ipsum dolor 0123456789 " * 36157  # ~1 MB
    def chunks():
        yield head
        left = text_bytes
        while left > 0:
            yield piece[:left]
            left -= min(left, len(piece))
        yield tail
    return len(head) + text_bytes + len(tail), chunks()


def token_length(plain_len):
    raw = 1 + 8 + 16 + (plain_len // 16 + 1) * 16 + 32
    return 4 * ((raw + 2) // 3)


def fernet_token_chunks(key_b64, plain_chunks):
    """The Fernet token of the concatenated chunks, as base64url chunks (same bytes as
    cryptography's Fernet(key).encrypt(plaintext) for the same time and IV)."""
    raw = base64.urlsafe_b64decode(key_b64)
    signing, encryption = raw[:16], raw[16:]
    iv = os.urandom(16)
    head = b"\x80" + struct.pack(">Q", int(time.time())) + iv
    mac = hmac.HMAC(signing, hashes.SHA256())
    mac.update(head)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(encryption), modes.CBC(iv)).encryptor()
    pending = head
    for chunk in plain_chunks:
        ct = encryptor.update(padder.update(chunk))
        mac.update(ct)
        pending += ct
        cut = len(pending) - len(pending) % 3
        if cut:
            yield base64.urlsafe_b64encode(pending[:cut])
            pending = pending[cut:]
    ct = encryptor.update(padder.finalize()) + encryptor.finalize()
    mac.update(ct)
    yield base64.urlsafe_b64encode(pending + ct + mac.finalize())


def read_key(key_file):
    with open(key_file, "rb") as fh:
        return fh.read().split()[0]


BOUNDARY = "b7c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9"


def main(argv):
    cmd = argv[1]
    if cmd == "schema":
        with open(argv[2], "w") as fh:
            fh.write(SCHEMA)
    elif cmd == "body":  # small: in memory, as make_upload_body.py
        key, size, out = read_key(argv[2]), int(argv[3]), argv[4]
        _, chunks = records_xml(size)
        plain = b"".join(chunks)
        token = b"".join(fernet_token_chunks(key, [plain]))
        with open(out, "wb") as fh:
            fh.write(b"--" + BOUNDARY.encode() + b"\r\n"
                     b'Content-Disposition: form-data; name="file"; filename="bench.xml.enc"\r\n\r\n'
                     + token + b"\r\n--" + BOUNDARY.encode() + b"--\r\n")
        with open(out + ".plain", "wb") as fh:
            fh.write(plain)
        print(BOUNDARY)
    elif cmd == "token":  # large: streamed to the file; OUT.plain_bytes holds the plaintext size
        key, size, out = read_key(argv[2]), int(argv[3]), argv[4]
        plain_len, chunks = records_xml(size)
        written = 0
        with open(out, "wb") as fh:
            for c in fernet_token_chunks(key, chunks):
                fh.write(c)
                written += len(c)
        assert written == token_length(plain_len), (written, plain_len)
        print(plain_len)
    elif cmd == "plain":  # the plaintext alone (to check it against the schema with xmllint)
        _, chunks = records_xml(int(argv[2]))
        with open(argv[3], "wb") as fh:
            for c in chunks:
                fh.write(c)
    elif cmd == "post":
        post(int(argv[2]), argv[3], argv[4], argv[5], int(argv[6]))
    elif cmd == "sign":  # as bench/front.sh: one signature per new name, made just before a run
        sign(argv[2], argv[3], argv[4], int(argv[5]), argv[6])
    else:
        sys.exit(__doc__)


def post(port, body_file, boundary, prefix, count):
    import http.client
    with open(body_file, "rb") as fh:
        body = fh.read()
    conn, refused = http.client.HTTPConnection("127.0.0.1", port, timeout=120), 0
    for i in range(count):
        conn.request("POST", "/upload/%s-%d" % (prefix, i), body=body,
                     headers={"Content-Type": "multipart/form-data; boundary=" + boundary})
        answer = conn.getresponse()
        answer.read()
        refused += answer.status != 201
    conn.close()
    print(refused)


def sign(key_file, body_file, prefix, count, out):
    """As the sender signs (shared/src/upload_signature.cpp): HKDF-SHA256 of the Fernet key's 32
    bytes (no salt, info "transfer upload signature v1") is the HMAC-SHA256 key; the MAC covers
    domain, method, target, Content-Length, plaintext SHA-256, Idempotency-Key and X-Transfer-Id
    (all three absent here: empty) and t, one per line."""
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"transfer upload signature v1").derive(base64.urlsafe_b64decode(read_key(key_file)))
    length, t = os.path.getsize(body_file), int(time.time())
    with open(out, "w") as fh:
        for i in range(count):
            target = "/upload/%s-%d" % (prefix, i)
            msg = "transfer-upload-v1\nPOST\n%s\n%d\n\n\n\n%d" % (target, length, t)
            fh.write("%s\tt=%d,v1=%s\n" % (target, t, std_hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()))


if __name__ == "__main__":
    main(sys.argv)
