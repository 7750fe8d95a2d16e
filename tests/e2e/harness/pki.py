"""A test CA and one certificate for 127.0.0.1 (and localhost), made with
the openssl command line, for SIP over TLS and WSS."""

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Pki:
    ca: Path        # the CA certificate (PEM)
    cert: Path      # the leaf certificate for 127.0.0.1 (PEM)
    key: Path       # its key (PEM)
    combined: Path  # certificate and key in one file (what baresip wants)


def make(directory: Path) -> Pki:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=stox test CA")
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                               "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                               "extendedKeyUsage=serverAuth,clientAuth\n")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext.cnf")
    combined = d / "combined.pem"
    combined.write_text((d / "leaf.pem").read_text() + (d / "leaf.key").read_text())
    return Pki(ca=d / "ca.pem", cert=d / "leaf.pem", key=d / "leaf.key", combined=combined)
