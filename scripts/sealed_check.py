#!/usr/bin/env python3
"""Reads the strace log of a sealed run (scripts/sealed-run.sh) and fails when the run

1. touched a path outside the clone in the folders it must never read: the empty folder the clone
   was made in (a `../shared/...` read) and the folder of the checkout it was cloned from (an
   absolute path baked into code); or
2. used a file of a Debian package that a fresh machine does not have
   (scripts/baseline-packages.txt) and that `make deps` does not install, directly or as a
   dependency (the table in scripts/deps.sh). This is what makes a package missing from
   `make deps` visible on a machine that happens to have it installed already.

Relative paths are resolved against each process's working directory, followed through fork,
clone and chdir, since cargo runs each test binary in its crate's folder.

usage: sealed_check.py TRACE CLONE ORIGIN
"""

import os
import re
import subprocess
import sys
from collections import defaultdict

# `PID syscall(args) = result`, possibly split by strace into `<unfinished ...>` and
# `<... syscall resumed>` halves when two processes interleave.
LINE = re.compile(r"^(\d+)\s+(.*)$")
UNFINISHED = re.compile(r"^(.*) <unfinished \.\.\.>$")
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(.*)$")
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')

# Calls whose first string argument (or second, for the *at forms) names a path.
PATH_CALLS = {
    "open": 0, "openat": 1, "openat2": 1, "stat": 0, "lstat": 0, "newfstatat": 1,
    "statx": 1, "access": 0, "faccessat": 1, "faccessat2": 1, "execve": 0, "readlink": 0,
    "readlinkat": 1,
}
FORKS = {"clone", "clone3", "fork", "vfork"}
OPENS = {"open", "openat", "openat2", "execve"}


def unescape(text):
    if "\\" not in text:
        return text
    return bytes(text, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def string_args(args):
    return [unescape(s) for s in STRING.findall(args)]


def calls(lines):
    """Yields (pid, name, args, result) with split calls joined again."""
    pending = {}
    for raw in lines:
        match = LINE.match(raw.rstrip("\n"))
        if not match:
            continue
        pid, rest = match.group(1), match.group(2)
        unfinished = UNFINISHED.match(rest)
        if unfinished:
            pending[pid] = unfinished.group(1)
            continue
        resumed = RESUMED.match(rest)
        if resumed:
            rest = pending.pop(pid, resumed.group(1) + "(") + resumed.group(2)
        call = CALL.match(rest)
        if call:
            yield pid, call.group(1), call.group(2), call.group(3)


def accesses(trace_path, start_dir):
    """Every path the traced processes named, made absolute, with whether the call succeeded
    and the program that made it."""
    cwd = defaultdict(lambda: start_dir)
    program = defaultdict(str)
    seen = set()
    with open(trace_path, encoding="utf-8", errors="replace") as lines:
        for pid, name, args, result in calls(lines):
            seen.add(pid)
            ok = result not in ("?",) and not result.startswith("-")
            if name in FORKS and ok:
                # A vfork'd child (posix_spawn) runs, and may chdir and exec, before its
                # parent's clone returns: what it did itself wins over what it inherited.
                if result not in seen:
                    cwd[result] = cwd[pid]
                    program[result] = program[pid]
                seen.add(result)
                continue
            strings = string_args(args)
            if name == "execve" and ok and strings:
                program[pid] = os.path.normpath(os.path.join(cwd[pid], strings[0]))
            if name == "chdir" and ok and strings:
                cwd[pid] = os.path.normpath(os.path.join(cwd[pid], strings[0]))
                continue
            if name == "fchdir" and ok:
                fd = re.match(r"^\d+<([^>]*)>", args)
                if fd:
                    cwd[pid] = fd.group(1)
                continue
            if name not in PATH_CALLS or not strings:
                continue
            path = strings[0]
            # The *at forms name a directory descriptor first; strace's -y shows it as <path>.
            base = cwd[pid]
            if not path.startswith("/") and PATH_CALLS[name] == 1:
                fd = re.match(r"^(?:\d+|AT_FDCWD)<([^>]*)>", args)
                if fd:
                    base = fd.group(1)
            yield name, os.path.normpath(os.path.join(base, path)), ok, program[pid]


def inside(path, folder):
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def dpkg_owners():
    """Maps every file Debian installed (with its directories resolved) to its package."""
    owners = {}
    resolved_dirs = {}
    info = "/var/lib/dpkg/info"
    for entry in os.listdir(info):
        if not entry.endswith(".list"):
            continue
        package = entry[: -len(".list")].split(":")[0]
        with open(os.path.join(info, entry), encoding="utf-8", errors="replace") as files:
            for line in files:
                path = line.rstrip("\n")
                if not path or path == "/.":
                    continue
                folder, base = os.path.split(path)
                if folder not in resolved_dirs:
                    resolved_dirs[folder] = os.path.realpath(folder)
                real = os.path.join(resolved_dirs[folder], base)
                if not os.path.isdir(real):
                    owners.setdefault(real, package)
                    owners.setdefault(path, package)
    return owners


def installed_depends():
    """Package -> the packages it depends on, from dpkg's status (alternatives all count)."""
    depends = defaultdict(set)
    provides = defaultdict(set)
    package = None
    with open("/var/lib/dpkg/status", encoding="utf-8", errors="replace") as status:
        for line in status:
            if line.startswith("Package: "):
                package = line.split(":", 1)[1].strip()
            elif package and line.startswith(("Depends: ", "Pre-Depends: ")):
                for clause in line.split(":", 1)[1].split(","):
                    for alternative in clause.split("|"):
                        name = alternative.strip().split(" ")[0].split(":")[0]
                        if name:
                            depends[package].add(name)
            elif package and line.startswith("Provides: "):
                for item in line.split(":", 1)[1].split(","):
                    provides[item.strip().split(" ")[0]].add(package)
    return depends, provides


def closure(roots, depends, provides):
    seen, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(depends.get(name, ()))
        stack.extend(provides.get(name, ()))
    return seen


def main():
    trace, clone, origin = sys.argv[1:4]
    clone = os.path.realpath(clone)
    root = os.path.dirname(os.path.abspath(__file__))
    forbidden = [os.path.dirname(clone), os.path.dirname(os.path.realpath(origin))]

    # A shell checks that $PWD and $OLDPWD still exist: a look at those folders themselves (not
    # into them) reads nothing.
    looked_at = {os.path.dirname(clone), os.path.realpath(origin)}

    # cargo, rustup, rustfmt and clippy look for their config files (rustfmt.toml,
    # .cargo/config.toml, rust-toolchain.toml) in every folder above the workspace. Such a
    # look that finds nothing reads nothing; one that finds a file is reported like any read.
    home = os.path.expanduser("~")
    toolchain = [
        os.path.realpath(os.environ.get("RUSTUP_HOME", os.path.join(home, ".rustup"))),
        os.path.realpath(os.environ.get("CARGO_HOME", os.path.join(home, ".cargo"))),
    ]

    real = {}

    def from_toolchain(program):
        if program not in real:
            resolved = os.path.realpath(program)
            real[program] = any(inside(resolved, t) for t in toolchain)
        return real[program]

    outside = defaultdict(int)
    used = set()
    for name, path, ok, program in accesses(trace, clone):
        if name not in OPENS and path in looked_at:
            continue
        if not ok and from_toolchain(program):
            continue
        if not inside(path, clone) and any(inside(path, f) for f in forbidden):
            outside[path] += 1
        if ok and path.startswith(("/usr/", "/bin/", "/sbin/", "/lib", "/etc/", "/opt/")):
            used.add(path)

    owners = dpkg_owners()
    deps = subprocess.run(
        ["bash", os.path.join(root, "deps.sh"), "--list"], check=True, capture_output=True,
        text=True,
    ).stdout.split()
    with open(os.path.join(root, "baseline-packages.txt"), encoding="utf-8") as lines:
        baseline = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    depends, provides = installed_depends()
    given = closure(baseline | set(deps), depends, provides)

    undeclared = defaultdict(set)
    for path in used:
        package = owners.get(path) or owners.get(os.path.realpath(path))
        if package and package not in given:
            undeclared[package].add(path)

    failed = False
    if outside:
        failed = True
        print("sealed: the run read outside the clone:", file=sys.stderr)
        for path, count in sorted(outside.items()):
            print(f"  {path} ({count}x)", file=sys.stderr)
    if undeclared:
        failed = True
        print(
            "sealed: the run used Debian packages that a fresh machine lacks and make deps does "
            "not install (add them to scripts/deps.sh):",
            file=sys.stderr,
        )
        for package, paths in sorted(undeclared.items()):
            print(f"  {package}: {', '.join(sorted(paths)[:3])}", file=sys.stderr)
    if failed:
        return 1
    print(
        f"sealed: nothing outside the clone was read; {len(used)} system files used, all from "
        f"packages a fresh machine has or make deps installs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
