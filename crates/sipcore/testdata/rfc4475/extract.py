#!/usr/bin/env python3
"""Regenerate the RFC 4475 torture-test vectors from the text of the RFC.

Usage:
    python3 extract.py [path/to/rfc4475.txt] [--out DIR]

The RFC text defaults to rfc4475.txt next to this script, and the output
directory defaults to the directory of this script.  The script writes

    valid/<name>.sip     section 3.1.1 (Valid Messages)
    invalid/<name>.sip   section 3.1.2 (Invalid Messages)
    semantic/<name>.sip  insuf (3.3.1) and multi01 (3.3.8): syntactically
                         well formed, but a receiver must reject them

Each message is rebuilt from the "Message Details : <name>" block of section
3 by applying the markup of section 2 of the RFC:

  * the RFC's presentation indentation (6 spaces before every message line)
    is removed; any further leading whitespace is part of the message
    (header folding) and is kept;
  * page footers/headers that fall inside a message are removed (an RFC page
    break is exactly 3 empty lines, the footer line, a form feed, the header
    line and 2 empty lines; any other empty line is part of the message);
  * every line ends in CRLF; a message with no empty line (no body) gets the
    empty line that ends its header section;
  * <allOneLine> ... </allOneLine> (2.1): the enclosed lines are
    concatenated with no line break;
  * <repeat count=N>value</repeat> (2.3): value repeated N times;
  * <hex> ... </hex> (2.2): replaced by the octets given in hex (a <hex>
    element may span lines; line breaks and indentation inside it are not
    part of the message).

The script then decodes the bit-exact archive of Appendix A from the same
RFC text (base64, gzip, tar; the one-token lines between the BEGIN and END
lines, as the RFC's own Perl script in Appendix A does) and compares every
message byte for byte.  Section 1 of the RFC says the appendix is there "to
resolve any remaining ambiguity".  The two renderings agree for all but four
of the messages written here; for those, DECISIONS below says which rendering
is written and why.  Any other difference is an error (exit status 1).
"""

import base64
import gzip
import io
import os
import re
import sys
import tarfile

VALID = [  # 3.1.1.1 .. 3.1.1.13
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq",
    "dblreq", "semiuri", "transports", "mpart01", "unreason", "noreason",
]
INVALID = [  # 3.1.2.1 .. 3.1.2.19
    "badinv01", "clerr", "ncl", "scalar02", "scalarlg", "quotbal",
    "ltgtruri", "lwsruri", "lwsstart", "trws", "escruri", "baddate",
    "regbadct", "badaspec", "baddn", "badvers", "mismatch01", "mismatch02",
    "bigcode",
]
SEMANTIC = ["insuf", "multi01"]  # 3.3.1, 3.3.8

# Where the section 3 rendering and the Appendix A archive differ.
DECISIONS = {
    # Appendix A has one more CRLF after the REGISTER's empty line and one
    # more after the last line of the trailing INVITE.  All of it lies in the
    # octets after the REGISTER (Content-Length: 0) that a receiver must
    # ignore; the RFC calls the appendix bit-accurate, so it is used.
    "dblreq": "appendix",
    # The body ends with an empty line that the text rendering cannot show
    # (trailing empty lines are indistinguishable from the prose gap).  With
    # it the body is 154 octets, which is what "l: 154" says.
    "multi01": "appendix",
    # Appendix A has "host1.examle.com" in the Via header (a typo); the text
    # of section 3.1.2.10 has "host1.example.com".  The text is used.
    "trws": "text",
    # Appendix A ends after "l: 0\r\n" without the empty line that ends the
    # header section (every other body-less message in the archive has it).
    # Section 3.1.2.15 gives the display names as the only defect, so the
    # text rendering, with the empty line, is used.
    "baddn": "text",
}

INDENT = " " * 6
PAGE_BREAK = re.compile(
    r"\n\n\n\nSparks, et al\. +Informational +\[Page \d+\]\n\f\n"
    r"RFC 4475 +SIP Torture Test Messages +May 2006\n\n\n"
)
DETAILS = re.compile(r"^      Message Details : (\S+)$")


def remove_page_breaks(text):
    # The break is replaced by the single line feed that ends the last line
    # of the previous page.
    return PAGE_BREAK.sub("\n", text)


def message_blocks(text):
    """Yield (name, [lines]) for every 'Message Details' block, indentation
    and trailing empty lines removed, markup still in place."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = DETAILS.match(lines[i])
        if not m:
            i += 1
            continue
        name = m.group(1)
        i += 1
        if lines[i] != "":
            raise ValueError(f"{name}: expected an empty line after the title")
        i += 1
        body = []
        while i < len(lines):
            line = lines[i]
            if line != "" and not line.startswith(INDENT):
                break  # back to RFC prose or a section heading
            if DETAILS.match(line):
                break
            body.append(line)
            i += 1
        while body and body[-1] == "":
            body.pop()
        out = []
        for line in body:
            if line == "":
                out.append("")
            else:
                out.append(line[len(INDENT):])
        yield name, out


def join_all_one_line(lines, name):
    out = []
    acc = None
    for line in lines:
        if line == "<allOneLine>":
            if acc is not None:
                raise ValueError(f"{name}: nested <allOneLine>")
            acc = []
        elif line == "</allOneLine>":
            if acc is None:
                raise ValueError(f"{name}: stray </allOneLine>")
            out.append("".join(acc))
            acc = None
        elif acc is not None:
            if line != line.rstrip():
                raise ValueError(f"{name}: whitespace at a fold point: {line!r}")
            acc.append(line)
        else:
            out.append(line)
    if acc is not None:
        raise ValueError(f"{name}: unterminated <allOneLine>")
    return out


def join_multiline_hex(lines, name):
    """A <hex> element that spans lines: the line breaks (and the leading
    whitespace of the continuation lines) are not message content."""
    out = []
    acc = None
    for line in lines:
        if acc is not None:
            acc += line.strip()
            if "</hex>" in line:
                out.append(acc)
                acc = None
            continue
        if line.count("<hex>") > line.count("</hex>"):
            acc = line
        else:
            out.append(line)
    if acc is not None:
        raise ValueError(f"{name}: unterminated <hex>")
    return out


REPEAT = re.compile(r"<repeat count=(\d+)>(.*?)</repeat>")
HEX = re.compile(r"<hex>([0-9A-Fa-f\s]*)</hex>")


def expand_line(line, name):
    line = REPEAT.sub(lambda m: m.group(2) * int(m.group(1)), line)
    out = bytearray()
    pos = 0
    for m in HEX.finditer(line):
        out += line[pos:m.start()].encode("ascii")
        out += bytes.fromhex(re.sub(r"\s", "", m.group(1)))
        pos = m.end()
    out += line[pos:].encode("ascii")
    if b"<hex>" in out or b"</hex>" in out or b"<repeat" in out or b"allOneLine>" in out:
        raise ValueError(f"{name}: markup left over in {bytes(out)!r}")
    return bytes(out)


def build_message(name, lines):
    lines = join_all_one_line(lines, name)
    lines = join_multiline_hex(lines, name)
    if "" not in lines:
        lines.append("")  # the empty line that ends the header section
    return b"".join(expand_line(line, name) + b"\r\n" for line in lines)


def appendix_archive(text):
    """Files of the Appendix A archive, decoded as the RFC's Perl script does:
    keep the one-token lines between the BEGIN and END lines."""
    data = []
    inside = False
    for line in text.split("\n"):
        if line.strip() == "-- BEGIN MESSAGE ARCHIVE --":
            inside = True
            continue
        if line.strip() == "-- END MESSAGE ARCHIVE --":
            break
        if inside and re.match(r"^\s*[^\s]+\s*$", line):
            data.append(line.strip())
    raw = gzip.decompress(base64.b64decode("".join(data)))
    files = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                files[member.name] = tar.extractfile(member).read()
    return files


def content_length(msg):
    """(declared Content-Length values, octets after the first empty line)."""
    head, _, body = msg.partition(b"\r\n\r\n")
    head = re.sub(rb"\r\n[ \t]+", b" ", head)  # unfold
    values = []
    for line in head.split(b"\r\n")[1:]:
        m = re.match(rb"(?i)(content-length|l)[ \t]*:[ \t]*(.*?)[ \t]*$", line)
        if m:
            values.append(m.group(2).decode("ascii"))
    return values, len(body)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    argv = list(argv)
    out_dir = here
    if "--out" in argv:
        i = argv.index("--out")
        out_dir = argv[i + 1]
        del argv[i:i + 2]
    rfc_path = argv[0] if argv else os.path.join(here, "rfc4475.txt")
    with open(rfc_path, "rb") as f:
        text = f.read().decode("ascii").replace("\r\n", "\n")

    blocks = dict(message_blocks(remove_page_breaks(text)))
    archive = appendix_archive(text)

    failures = 0
    print(f"{'file':24} {'bytes':>5}  {'Content-Length':>14}  {'body':>5}  source")
    for sub, names in (("valid", VALID), ("invalid", INVALID), ("semantic", SEMANTIC)):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
        for name in names:
            msg = build_message(name, blocks[name])
            ref = archive.get(name + ".dat")
            decision = DECISIONS.get(name)
            if ref == msg:
                source = "text = Appendix A"
                if decision:
                    source += " (DECISIONS entry no longer needed)"
            elif decision == "appendix" and ref is not None:
                msg = ref
                source = "Appendix A (differs from text, see DECISIONS)"
            elif decision == "text":
                source = "text (differs from Appendix A, see DECISIONS)"
            else:
                source = "text, DIFFERS FROM APPENDIX A"
                failures += 1
            with open(os.path.join(out_dir, sub, name + ".sip"), "wb") as f:
                f.write(msg)
            values, body = content_length(msg)
            cl = ",".join(values) if values else "-"
            print(f"{sub + '/' + name + '.sip':24} {len(msg):5}  {cl:>14}  {body:5}  {source}")
    if failures:
        print(f"{failures} message(s) differ from Appendix A", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
