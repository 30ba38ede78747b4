#!/usr/bin/env python3
"""One toolchain for every build: the workspace's `rust-version` (Cargo.toml)
is the single source of truth, and this check holds the others to it.

- The Dockerfile's builder image (`ARG RUST_VERSION`) is that version.
- No locked dependency built for this host needs a newer compiler: the
  image would fail at `cargo build --locked` (as rust:1.88 did on uuid
  1.29.3 and generator 0.8.12).
- The compiler here is not older than it (else `make test` would fail
  later, less clearly).

`make test` runs it first; exit 1 names each mismatch and what to change.
"""
import json
import pathlib
import re
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def version(text: str) -> tuple[int, int, int]:
    """`1.88` and `1.88.0` alike."""
    parts = [int(x) for x in text.split(".")] + [0, 0]
    return parts[0], parts[1], parts[2]


def main() -> int:
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    wanted = cargo["workspace"]["package"]["rust-version"]
    problems = []

    dockerfile = (ROOT / "Dockerfile").read_text()
    arg = re.search(r"^ARG RUST_VERSION=(\S+)$", dockerfile, re.M)
    if not arg:
        problems.append("Dockerfile: no `ARG RUST_VERSION=…` line for the builder image")
    elif arg.group(1) != wanted:
        problems.append(
            f"Dockerfile builds with Rust {arg.group(1)}, Cargo.toml's rust-version is {wanted}: "
            f"set `ARG RUST_VERSION={wanted}`"
        )

    rustc = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    host = re.search(r"^host: (\S+)$", rustc, re.M).group(1)
    here = re.search(r"^release: (\d+\.\d+(?:\.\d+)?)", rustc, re.M).group(1)
    if version(here) < version(wanted):
        problems.append(f"rustc here is {here}, older than the workspace's rust-version {wanted}")

    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--locked", "--format-version", "1", "--filter-platform", host],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout
    )
    built = {node["id"] for node in meta["resolve"]["nodes"]}
    for package in meta["packages"]:
        need = package.get("rust_version")
        if package["id"] in built and need and version(need) > version(wanted):
            problems.append(
                f"{package['name']} {package['version']} (locked) needs Rust {need}, newer than "
                f"rust-version {wanted}: raise rust-version and the Dockerfile's RUST_VERSION together, "
                f"or lock an older {package['name']}"
            )

    if problems:
        print("toolchain check FAILED:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print(f"toolchain check: Rust {wanted} everywhere (Cargo.toml, Dockerfile; rustc here {here}); "
          f"{len(built)} locked packages for {host} fit it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
