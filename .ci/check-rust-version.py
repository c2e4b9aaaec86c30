#!/usr/bin/env python3
"""Fails when the locked dependency graph of the firmware build needs a newer Rust than the Yocto
layer stack that meta-edgerec claims to build with (issue "Firmware an integrator can trust").

It reads `cargo metadata` for the firmware graph (aarch64 Linux, `--no-default-features
--features upload,mqtt,ui`, normal and build dependencies), takes the highest `rust-version` of any
crate in it (edgerec's own included), and compares it with the Rust of each layer stack the layer
claims: LAYERSERIES_COMPAT and LAYERDEPENDS of yocto/meta-edgerec/conf/layer.conf, looked up in
RUST_OF_STACK below.

Usage: check-rust-version.py   (from the repository root; needs cargo and the crates fetched)
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "yocto"))
from cargo_graph import firmware_packages  # noqa: E402

# The Rust each claimed layer stack builds with, and where that figure comes from. A stack is
# (release series, mixin layer collection or None).
RUST_OF_STACK = {
    # openembedded-core, branch scarthgap: meta/recipes-devtools/rust/rust_1.75.0.bb, and
    # meta/conf/distro/include/tcmode-default.inc `RUSTVERSION ?= "1.75%"`.
    ("scarthgap", None): ("1.75.0", "oe-core scarthgap, rust_1.75.0.bb"),
    # meta-lts-mixins, branch scarthgap/rust (git.yoctoproject.org/meta-lts-mixins), collection
    # scarthgap-rust-mixin: conf/layer.conf `RUSTVERSION ?= "1.91.0%"` (at commit 0520c44c; the
    # branch has moved on since to 1.96). The recipe refuses a RUSTVERSION below edgerec's
    # rust-version at parse time, so an older checkout of the mixin fails with a clear message.
    ("scarthgap", "scarthgap-rust-mixin"): ("1.91.0", "meta-lts-mixins scarthgap/rust, conf/layer.conf"),
}


def vers(s):
    """"1.85" -> (1, 85, 0): a rust-version as a comparable triple."""
    parts = [int(x) for x in re.findall(r"\d+", s)[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


def layer_claims(path="yocto/meta-edgerec/conf/layer.conf"):
    text = open(path).read()
    series = re.search(r'LAYERSERIES_COMPAT_edgerec\s*=\s*"([^"]*)"', text).group(1).split()
    deps = re.search(r'LAYERDEPENDS_edgerec\s*=\s*"([^"]*)"', text).group(1).split()
    mixins = [d for d in deps if d.endswith("-rust-mixin")]
    return [(s, m) for s in series for m in (mixins or [None]) if m is None or m.startswith(s)]


def highest_rust_version():
    pkgs = firmware_packages(linked_only=False)
    need = sorted((vers(p["rust_version"]), p["name"], p["version"]) for p in pkgs if p.get("rust_version"))
    return need[-1], len(pkgs)


def main():
    (top, name, version), count = highest_rust_version()
    top_s = ".".join(map(str, top))
    claims = layer_claims()
    if not claims:
        sys.exit("layer.conf claims no release series")
    failed = False
    for stack in claims:
        if stack not in RUST_OF_STACK:
            print(f"FAIL: layer.conf claims {stack}, which the table in {sys.argv[0]} does not know: "
                  "add its Rust version with a source")
            failed = True
            continue
        have, source = RUST_OF_STACK[stack]
        ok = vers(have) >= top
        print(f"{'ok' if ok else 'FAIL'}: {' + '.join(s for s in stack if s)} provides Rust {have} ({source}); "
              f"the firmware's {count} crates need {top_s} ({name} {version})")
        failed |= not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
