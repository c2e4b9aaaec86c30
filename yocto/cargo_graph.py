"""The firmware's crate graph, from `cargo metadata`: aarch64 Linux, `--no-default-features
--features upload,mqtt,ui` (what the Yocto recipe builds by default). Shared by
yocto/gen-license-inc.py (what the binary links) and .ci/check-rust-version.py (what must compile).
"""
import json
import subprocess


def firmware_packages(linked_only):
    """The packages reachable from edgerec. `linked_only`: follow normal dependencies only and
    skip proc-macro crates (their code runs on the build machine and stays out of the binary);
    otherwise follow build dependencies too and keep proc macros (everything that is compiled)."""
    meta = json.loads(subprocess.check_output([
        "cargo", "metadata", "--format-version", "1", "--locked", "--no-default-features",
        "--features", "upload,mqtt,ui", "--filter-platform", "aarch64-unknown-linux-gnu"]))
    pkgs = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    kinds = (None,) if linked_only else (None, "build")

    def proc_macro(i):
        return all("proc-macro" in t["kind"] for t in pkgs[i]["targets"])

    seen, todo = set(), [meta["resolve"]["root"]]
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        todo += [d["pkg"] for d in nodes[i]["deps"]
                 if any(k["kind"] in kinds for k in d["dep_kinds"])
                 and not (linked_only and proc_macro(d["pkg"]))]
    return [pkgs[i] for i in seen]
