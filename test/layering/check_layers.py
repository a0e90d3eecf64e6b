"""layering - no folder of include/ and src/ includes a folder above it.

The folders are layers, lowest first (docs/architecture.md, "Layers"):

    inet < smtp < config < policy < state < session < ops < net < main

A file may include its own layer and the layers below it, never one above: config/ validates
rules with inet/ and never reaches into policy/, policy/ never includes state/. policy/checks/
is part of policy/. The layers below ops/ build as smtpgate_core, which does not link Asio, so
they may not include Boost or OpenSSL headers either. A folder missing from LAYERS is an error:
a new folder has to be given its place.

Reads only the #include lines; no compiler needed. Usage: check_layers.py [SOURCE_DIR]
(default: the repository this file is in). Exit status 1 names every offending file:line.
"""

import re
import sys
from pathlib import Path

LAYERS = ("inet", "smtp", "config", "policy", "state", "session", "ops", "net", "main")
# smtpgate_core: the pure layers.
CORE = frozenset(("inet", "smtp", "config", "policy", "state", "session"))
CORE_FORBIDDEN = ("boost/", "openssl/")
SUFFIXES = (".hpp", ".cpp", ".h")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
ORDER = " < ".join(LAYERS)


def layer_of(relative):
    """The layer of a path relative to the source root, None outside include/ and src/."""
    parts = relative.parts
    if parts[:2] == ("include", "smtpgate") and len(parts) > 3:
        return parts[2]
    if parts[:1] == ("src",):
        return "main" if len(parts) == 2 else parts[1]
    return None


def target_of(root, source, delimiter, name):
    """The project file an include names (relative to root), or None for a library header."""
    if name.startswith("smtpgate/"):
        return Path("include", name)
    if delimiter == '"':
        local = ((root / source).parent / name).resolve()
        if local.is_file() and local.is_relative_to(root):
            return local.relative_to(root)
    return None


def check(root):
    """Every violation under root, as "file:line: message" strings."""
    root = Path(root).resolve()
    problems = []
    files = sorted(p for top in ("include", "src") for p in (root / top).rglob("*")
                   if p.suffix in SUFFIXES and p.is_file())
    for path in files:
        source = path.relative_to(root)
        layer = layer_of(source)
        if layer not in LAYERS:
            problems.append(f"{source}:1: {layer}/ is not a layer; give it a place in LAYERS")
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            delimiter, name = match.groups()
            closing = ">" if delimiter == "<" else '"'
            where = f"{source}:{number}: {delimiter}{name}{closing}"
            target = target_of(root, source, delimiter, name)
            if target is None:
                if delimiter == '"':
                    problems.append(f"{where}: not found next to the file or under include/")
                elif layer in CORE and name.startswith(CORE_FORBIDDEN):
                    problems.append(f"{where}: {layer}/ is in smtpgate_core, which does not "
                                    "link Asio or OpenSSL")
                continue
            included = layer_of(target)
            if included not in LAYERS:
                problems.append(f"{where}: {included}/ is not a layer")
            elif LAYERS.index(included) > LAYERS.index(layer):
                problems.append(f"{where}: {layer}/ includes {included}/, a layer above it")
    return problems


def main(argv):
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2]
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"layering: {len(problems)} problem(s); allowed order, lowest first: {ORDER}")
        return 1
    print(f"layering ok: {ORDER}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
