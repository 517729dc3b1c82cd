#!/usr/bin/env bash
# Checks the module layering of src/ (run by scripts/test.sh; exits 1 when an arrow runs back up):
#   1. store, domain, config and error are leaves: they import none of http, ws, chat;
#   2. the two edges are apart: no module of http imports ws, none of ws imports http;
#   3. no import circle between top-level modules (the first path segment after `crate::`).
# Imports are `use crate::x...` (grouped forms too) and `crate::x::` paths in code; comments
# are ignored. Prints each offending arrow as `file:line: from -> to (rule)`.
#
#   scripts/check-layers.sh [SRC_DIR]     (default: the repository's src/)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="${1:-$ROOT/src}"
[[ -d "$SRC" ]] || { echo "check-layers: no directory $SRC" >&2; exit 2; }

exec python3 - "$SRC" <<'PY'
import os, re, sys

src = sys.argv[1]
LEAVES = {"store", "domain", "config", "error"}
FORBIDDEN_FROM_LEAVES = {"http", "ws", "chat"}
EDGES = {("http", "ws"), ("ws", "http")}

def top_of(path):
    rel = os.path.relpath(path, src).replace(os.sep, "/")
    first = rel.split("/")[0]
    return first[:-3] if first.endswith(".rs") else first

def strip_comments(line):
    # Line comments only (doc comments included); string literals holding `//` are rare here.
    i = line.find("//")
    return line if i < 0 else line[:i]

arrows = {}          # (from, to) -> first (file, line)
problems = []
for dirpath, _, files in os.walk(src):
    for name in sorted(files):
        if not name.endswith(".rs"):
            continue
        path = os.path.join(dirpath, name)
        me = top_of(path)
        if me in ("lib", "main"):
            continue
        with open(path, encoding="utf-8") as f:
            lines = [strip_comments(l.rstrip("\n")) for l in f]
        text = "\n".join(lines)
        found = []
        # `crate::x` anywhere (use lines and paths in code).
        for m in re.finditer(r"\bcrate::(\w+)", text):
            found.append((m.group(1), text.count("\n", 0, m.start()) + 1))
        # `use crate::{a, b::c, ...};` (possibly over several lines).
        for m in re.finditer(r"\buse\s+crate::\{(.*?)\};", text, flags=re.S):
            depth, part, start = 0, "", m.start(1)
            for ch in m.group(1) + ",":
                if ch == "{": depth += 1
                if ch == "}": depth -= 1
                if ch == "," and depth == 0:
                    head = part.strip().split("::")[0].strip()
                    if re.fullmatch(r"\w+", head or "") and head != "self":
                        found.append((head, text.count("\n", 0, start) + 1))
                    part = ""
                else:
                    part += ch
        for to, line in found:
            if to == me or to in ("self", "super"):
                continue
            rel = os.path.relpath(path, os.path.dirname(src))
            arrows.setdefault((me, to), (rel, line))
            if me in LEAVES and to in FORBIDDEN_FROM_LEAVES:
                problems.append(f"{rel}:{line}: {me} -> {to} (a leaf imports an upper layer)")
            if (me, to) in EDGES:
                problems.append(f"{rel}:{line}: {me} -> {to} (one edge imports the other)")

# Circles: strongly connected components of the module graph (Tarjan).
graph = {}
for (a, b) in arrows:
    graph.setdefault(a, set()).add(b)
    graph.setdefault(b, set())
index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in sorted(graph[v]):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1:
            comps.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(graph):
    if v not in index:
        visit(v)
for comp in comps:
    members = set(comp)
    inner = sorted((a, b) for (a, b) in arrows if a in members and b in members)
    problems.append("import circle between " + ", ".join(comp) + ":")
    for a, b in inner:
        f, l = arrows[(a, b)]
        problems.append(f"  {f}:{l}: {a} -> {b}")

modules = len(graph)
if problems:
    print("\n".join(problems))
    print(f"check-layers: FAILED ({len(problems)} finding(s), {modules} modules, {len(arrows)} arrows)")
    sys.exit(1)
print(f"check-layers: ok ({modules} top-level modules, {len(arrows)} arrows, no arrow back up, no circle)")
PY
