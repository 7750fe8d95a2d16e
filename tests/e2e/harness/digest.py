"""A SIP client's digest answer to a challenge (RFC 7616 §3.4, qop=auth),
for tests that play a registering phone."""

import hashlib
import re


def challenge_params(header_value: str) -> dict[str, str]:
    return dict((k, v.strip('"')) for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', header_value))


def answer(challenge: str, user: str, password: str, method: str, uri: str, nc: int = 1,
           cnonce: str = "0a4f113b") -> str:
    p = challenge_params(challenge)
    alg = p.get("algorithm", "MD5")
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[alg]
    H = lambda s: h(s.encode()).hexdigest()
    ha1 = H(f"{user}:{p['realm']}:{password}")
    ha2 = H(f"{method}:{uri}")
    ncs = f"{nc:08x}"
    response = H(f"{ha1}:{p['nonce']}:{ncs}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{p["realm"]}", nonce="{p["nonce"]}", uri="{uri}", '
            f'response="{response}", qop=auth, nc={ncs}, cnonce="{cnonce}", algorithm={alg}')
