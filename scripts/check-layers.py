#!/usr/bin/env python3
"""Check that the folders of src/ include one another only downward.

The layer order is the table that follows the marker line
    <!-- layers: checked by scripts/check-layers.py -->
in docs/ARCHITECTURE.md:
    | layer | folders |
    |-------|---------|
    | 0     | core    |
    | 1     | crypto, xml |
A folder may include its own headers and those of folders on a lower layer;
every `#include "folder/file.h"` in src/<folder>/*.{c,h} is checked.

Inside a folder, the files must not call one another in circles either: a
file's module is its name without extension and without a `_priv` suffix
(route.c, route.h and route_priv.h are module "route"), and the includes of
a folder's own headers between modules must form no cycle. Each file
declaring what it offers in a header of its own is what makes this hold.

An include the check cannot follow is itself a violation: a Parley header
in angle brackets (<proxy/proxy.h> resolves through -Isrc all the same), a
path with "." or ".." segments, an include of a macro.

With --objects DIR (the compiled objects of src/, e.g. build/libparley.a.p)
the folder rules are checked on what the code really uses as well: every
undefined symbol of an object that another folder's object defines is an
edge, so a dependency through an `extern` declaration, which no #include
shows, is caught too. (Between the files of one folder, symbols are not
checked: a module may span files sharing a _priv.h, as sip/msg*.c do.)
Objects are named as Meson names them: src_FOLDER_FILE.c.o.
Exit 0: no violation; 1: violations (one line each); 2: usage or table error.
"""
import argparse
import re
import subprocess
import sys
from pathlib import Path

MARKER = "<!-- layers: checked by scripts/check-layers.py -->"
DIRECTIVE = re.compile(r'^\s*#\s*include\b(.*)$')
QUOTED = re.compile(r'^"([^"]*)"$')
ANGLED = re.compile(r'^<([^>]*)>$')
COMMENTS = re.compile(r'/\*.*?\*/|//.*$')


def fail(message):
    print(f"check-layers: {message}", file=sys.stderr)
    sys.exit(2)


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def read_layers(doc):
    """Return {folder: layer} from the table after the marker in doc."""
    try:
        lines = Path(doc).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        fail(f"cannot read {doc}: {e.strerror}")
    starts = [i for i, line in enumerate(lines) if line.strip() == MARKER]
    if not starts:
        fail(f"{doc}: no line '{MARKER}'")
    rows = lines[starts[0] + 1:]
    while rows and not rows[0].strip():
        rows.pop(0)  # blank lines between the marker and the table
    table = []
    for line in rows:
        if not line.lstrip().startswith("|"):
            break
        table.append(line)
    if len(table) < 3 or [c.lower() for c in cells(table[0])] != ["layer", "folders"]:
        fail(f"{doc}: the marker must be followed by a table '| layer | folders |' "
             "with a separator row and at least one row")
    layers = {}
    for row in table[2:]:
        parts = cells(row)
        if len(parts) != 2 or not parts[0].isdigit():
            fail(f"{doc}: bad layer row: {row.strip()}")
        for folder in filter(None, (f.strip() for f in parts[1].split(","))):
            if folder in layers:
                fail(f"{doc}: folder {folder} is in two layers")
            layers[folder] = int(parts[0])
    return layers


def module_of(path):
    """route.c, route.h, route_priv.h -> route"""
    stem = Path(path).stem
    return stem[:-5] if stem.endswith("_priv") and len(stem) > 5 else stem


def find_cycles(graph):
    """Strongly connected components of more than one node, each as a cycle path."""
    index, low, stack, on_stack, sccs = {}, {}, [], set(), []

    def visit(v):  # Tarjan; the graph has a dozen nodes, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.add(w)
                if w == v:
                    break
            if len(scc) > 1:
                sccs.append(scc)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for scc in sccs:  # shortest way from the smallest folder back to itself
        start = min(scc)
        paths, seen = [[start]], {start}
        while paths:
            path = paths.pop(0)
            nexts = sorted(w for w in graph[path[-1]] if w in scc)
            if start in nexts:
                cycles.append(path + [start])
                break
            for w in nexts:
                if w not in seen:
                    seen.add(w)
                    paths.append(path + [w])
    return sorted(cycles)


OBJECT = re.compile(r"^src_([a-z0-9]+)_(.+)\.c\.o$")


def check_objects(directory, folders, edge, errors):
    """Adds an edge for every symbol an object uses that another defines;
    returns how many references were resolved."""
    if not directory.is_dir():
        fail(f"no object directory {directory}")
    objects = {}
    for path in sorted(directory.iterdir()):
        m = OBJECT.match(path.name)
        if m and m.group(1) in folders:
            objects[path] = (m.group(1), module_of(m.group(2)))
    if not objects:
        fail(f"{directory}: no objects named src_FOLDER_FILE.c.o")
    try:
        out = subprocess.run(["nm", "-A", "--format=posix"] + [str(p) for p in objects],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        fail(f"nm failed: {e}")
    defined, used = {}, []
    for line in out.splitlines():
        # "path: symbol TYPE [value size]"
        name, _, rest = line.partition(": ")
        fields = rest.split()
        if len(fields) < 2:
            continue
        symbol, kind = fields[0], fields[1]
        owner = objects.get(Path(name))
        if owner is None:
            continue
        if kind == "U":
            used.append((owner, symbol))
        elif kind in "TDBRGSVW" and kind.isupper():
            defined[symbol] = owner
    count = 0
    for (folder, module), symbol in used:
        target = defined.get(symbol)
        if target is None or target[0] == folder:
            continue  # libc, OpenSSL, libevent...; or the folder's own
        count += 1
        edge(folder, target[0], module, target[1],
             f"src/{folder}/{module}: uses {symbol} (src/{target[0]}/{target[1]})")
    return count


def main():
    ap = argparse.ArgumentParser(description="Check the folder layering of src/.")
    ap.add_argument("--doc", default="docs/ARCHITECTURE.md", help="Markdown file with the layer table")
    ap.add_argument("--src", default="src", help="source tree (default: src)")
    ap.add_argument("--objects", help="directory of compiled objects (src_FOLDER_FILE.c.o) to check "
                                      "the symbols they use, too")
    args = ap.parse_args()

    layers = read_layers(args.doc)
    src = Path(args.src)
    if not src.is_dir():
        fail(f"no source directory {src}")
    folders = sorted(p.name for p in src.iterdir() if p.is_dir())
    errors = [f"folder {f} is in no layer" for f in folders if f not in layers]
    errors += [f"{args.doc}: folder {f} (layer {layers[f]}) does not exist in {src}/"
               for f in sorted(layers) if f not in folders]

    graph, checked = {f: set() for f in folders}, 0
    inner = {f: {} for f in folders}  # folder -> module -> modules of the folder it includes

    def edge(folder, target, here, there, where):
        """folder/here uses target/there; `where` says where for the message."""
        if target == folder:
            inner[folder].setdefault(here, set())
            inner[folder].setdefault(there, set())
            if here != there:
                inner[folder][here].add(there)
            return
        graph[folder].add(target)
        if folder in layers and target in layers and layers[target] >= layers[folder]:
            errors.append(f"{where}: {folder} (layer {layers[folder]}) may not "
                          f"depend on {target} (layer {layers[target]})")

    for folder in folders:
        files = sorted(p for p in (src / folder).rglob("*") if p.suffix in (".c", ".h") and p.is_file())
        for path in files:
            text = path.read_text(encoding="utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), 1):
                d = DIRECTIVE.match(line)
                if not d:
                    continue
                rest = COMMENTS.sub("", d.group(1)).strip()
                quoted, angled = QUOTED.match(rest), ANGLED.match(rest)
                if angled:
                    first = angled.group(1).split("/")[0]
                    if "/" in angled.group(1) and first in folders:
                        checked += 1
                        errors.append(f"{path}:{number}: includes <{angled.group(1)}>: a Parley "
                                      f"header in angle brackets (write \"{angled.group(1)}\")")
                    continue  # a system or library header
                checked += 1
                if not quoted:
                    errors.append(f"{path}:{number}: includes {rest}: not a quoted path "
                                  "(the check cannot follow a macro)")
                    continue
                header, where = quoted.group(1), f"{path}:{number}: includes {quoted.group(1)}"
                parts = header.split("/")
                target = parts[0] if len(parts) == 2 else None
                if any(p in (".", "..", "") for p in parts):
                    errors.append(f"{where}: a path with . or .. (write \"folder/file.h\")")
                elif target is None:
                    errors.append(f"{where}: no folder part (write \"folder/{parts[-1]}\")")
                elif target not in folders:
                    errors.append(f"{where}: there is no folder {src}/{target}")
                else:
                    edge(folder, target, module_of(path.name), module_of(header), where)

    if args.objects:
        checked_refs = check_objects(Path(args.objects), folders, edge, errors)

    errors += ["cycle between folders: " + " -> ".join(c) for c in find_cycles(graph)]
    for folder in folders:
        errors += [f"cycle between files of {src}/{folder}: " + " -> ".join(c)
                   for c in find_cycles(inner[folder])]

    what = f"{len(folders)} folders, {checked} includes"
    if args.objects:
        what += f", {checked_refs} symbol references"
    for error in errors:
        print(error)
    if errors:
        print(f"layers: {len(errors)} violation(s); {what} checked")
        return 1
    print(f"layers: {what} checked, no violation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
