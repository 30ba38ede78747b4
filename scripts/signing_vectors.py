#!/usr/bin/env python3
"""Golden vectors for command signing, computed the way the hydro2.0 firmware
checks a command (cJSON: parse, sort keys, print unformatted; every number a C
double), written independently of the Rust code that signs.

Writes crates/proto/tests/golden/signing_vectors.json; `cargo test -p proto`
checks the Rust signer against it. Run: python3 scripts/signing_vectors.py
"""
import hashlib
import hmac
import json
import pathlib
import sys

INT_MAX, INT_MIN = 2**31 - 1, -(2**31)


def number(d: float) -> str:
    d = float(d)
    if d != d or d in (float("inf"), float("-inf")):
        return "null"
    # cJSON's valueint: the double cast to int, saturated.
    valueint = INT_MAX if d >= INT_MAX else INT_MIN if d <= INT_MIN else int(d)
    if d == float(valueint):
        return "%d" % valueint
    short = "%1.15g" % d
    back = float(short)
    if abs(back - d) <= max(abs(back), abs(d)) * sys.float_info.epsilon:
        return short
    return "%1.17g" % d


def string(s: str) -> str:
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif code < 32:
            out.append("\\u%04x" % code)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def canonical(v) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return number(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, list):
        return "[" + ",".join(canonical(x) for x in v) + "]"
    keys = sorted(v, key=lambda k: k.encode("utf-8"))
    return "{" + ",".join(string(k) + ":" + canonical(v[k]) for k in keys) + "}"


SECRET = "0123456789abcdef0123456789abcdef-node-secret"
COMMANDS = [
    ("integral float", '{"cmd_id":"v1","cmd":"dose","params":{"ml":2.0},"ts":1737979200}'),
    ("half", '{"cmd_id":"v2","cmd":"dose","params":{"ml":0.5},"ts":1737979200}'),
    ("1e21", '{"cmd_id":"v3","cmd":"set","params":{"big":1e21},"ts":1737979200}'),
    ("negative zero", '{"cmd_id":"v4","cmd":"set","params":{"z":-0.0},"ts":1737979200}'),
    ("unicode", '{"cmd_id":"v5","cmd":"label","params":{"name":"Томат/é ✓","q":"a\\"b"},"ts":1737979200}'),
    ("nested", '{"cmd_id":"v6","cmd":"run_pump","params":{"b":{"z":[3,1.25,{"y":true,"x":null}],"a":"1"},"duration_ms":30000,"ratio":0.1},"ts":1737979200}'),
    ("large integers", '{"cmd_id":"v7","cmd":"set","params":{"i":3000000000,"j":-2147483648,"k":12345678901234567890},"ts":1737979200}'),
    ("thirds", '{"cmd_id":"v8","cmd":"set","params":{"t":0.3333333333333333,"e":1e-7},"ts":1737979200}'),
    ("empty params", '{"cmd_id":"v9","cmd":"reboot","params":{},"ts":1737979200}'),
]


def main() -> None:
    vectors = []
    for name, text in COMMANDS:
        command = json.loads(text)
        body = canonical(command)
        sig = hmac.new(SECRET.encode(), body.encode("utf-8"), hashlib.sha256).hexdigest()
        vectors.append({"name": name, "command": text, "canonical": body, "sig": sig})
    out = pathlib.Path(__file__).resolve().parent.parent / "crates/proto/tests/golden/signing_vectors.json"
    out.write_text(json.dumps({"secret": SECRET, "vectors": vectors}, ensure_ascii=False, indent=2) + "\n")
    print(f"wrote {len(vectors)} vectors to {out}")


if __name__ == "__main__":
    main()
