#!/usr/bin/env python3
"""Finds cycles between the modules of each crate: module a uses module b (`crate::b::...` or
`super::b::...` outside comments and tests) and b, through its uses, comes back to a. A module
and its own parent or child are not a cycle (a parent declares its children). Exits 1 naming
each cycle; scripts/check-deps.sh runs it in CI.
"""
import os
import re
import sys

CRATES = ["schemas", "lake", "sketch", "kafka", "ingest", "processor", "query-api", "."]
USE = re.compile(r"\b(crate|super)::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)")


def module_of(root, path):
    parts = os.path.relpath(path, root)[:-3].split(os.sep)
    return parts[:-1] if parts[-1] in ("mod", "lib", "main") else parts


def exists(root, parts):
    base = os.path.join(root, *parts)
    return os.path.exists(base + ".rs") or os.path.exists(os.path.join(base, "mod.rs"))


def edges_of(root):
    edges = {}
    for d, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(d, f)
            me = module_of(root, path)
            if me and me[-1] == "tests":
                continue
            text = open(path).read().split("#[cfg(test)]")[0]
            text = "\n".join(l for l in text.split("\n") if not l.strip().startswith("//"))
            for m in USE.finditer(text):
                kind, target = m.group(1), m.group(2).split("::")
                target = target if kind == "crate" else me[:-1] + target
                while target and not exists(root, target):
                    target = target[:-1]
                a, b = "::".join(me), "::".join(target)
                if not b or a == b or a.startswith(b + "::") or b.startswith(a + "::"):
                    continue
                edges.setdefault(a, set()).add(b)
    return edges


def cycles(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main():
    sys.setrecursionlimit(10000)
    found = False
    for crate in CRATES:
        for c in cycles(edges_of(os.path.join(crate, "src"))):
            print(f"module cycle in {crate}: {' <-> '.join(c)}", file=sys.stderr)
            found = True
    if not found:
        print("ok: no module cycles")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
