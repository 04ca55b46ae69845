#!/usr/bin/python3
"""The manual pages parleyctl(8), parley.conf(5) and parleyd(8), as the
build generates them from the programs' own tables:

- man(1) formats each without a warning, and lexgrog(1) finds its NAME;
- parley.conf(5) has an entry for every key `parleyctl config keys` lists
  (and no other), under its section, with the key's default and whether
  reload applies it;
- parleyctl(8) has an entry for every command of `parleyctl --help`, in
  the same order, and every global option;
- parleyd(8) has every option of `parleyd --help`, and the sections an
  administrator looks for (signals, environment, files, exit status).

Usage: test_man_pages.py PARLEYCTL PARLEYD PARLEYCTL.8 PARLEY.CONF.5 PARLEYD.8
"""
import json
import os
import re
import shutil
import subprocess
import sys

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kw)


def unroff(text):
    """A line of the page as the reader sees it: escapes and fonts gone."""
    text = re.sub(r"\\f[BIRP]", "", text)
    return (text.replace("\\-", "-").replace("\\:", "").replace("\\&", "")
            .replace("\\e", "\\"))


def check_formats(page):
    env = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    r = run(["man", "--warnings", "-E", "UTF-8", "-P", "cat", "-l", page], env=env)
    if r.returncode != 0 or r.stderr.strip():
        fail("%s: man --warnings: rc %d\n%s" % (page, r.returncode, r.stderr))
    if not r.stdout.strip():
        fail("%s: man printed nothing" % page)
    r = run(["lexgrog", page])
    name = os.path.basename(page).rsplit(".", 1)[0]
    if r.returncode != 0 or ('"%s - ' % name) not in r.stdout:
        fail("%s: lexgrog does not find its NAME section: %r" % (page, r.stdout + r.stderr))


def check_sections(page, lines, wanted):
    have = {unroff(l[4:]).strip('"') for l in lines if l.startswith(".SH ")}
    for s in wanted:
        if s not in have:
            fail("%s: no section %s" % (page, s))


def check_conf(parleyctl, page, lines):
    r = run([parleyctl, "--json", "config", "keys"])
    if r.returncode != 0:
        fail("parleyctl config keys: rc %d %s" % (r.returncode, r.stderr))
        return
    keys = json.loads(r.stdout)["keys"]
    if len(keys) < 10:
        fail("parleyctl config keys lists only %d keys" % len(keys))
    # the entries of the page: .SS [section], then .TP / .B name / body
    entries = {}
    section = None
    for i, line in enumerate(lines):
        if line.startswith(".SS ["):
            section = unroff(line[4:]).strip("[]")
        elif line == ".TP" and section and i + 1 < len(lines) and lines[i + 1].startswith(".B "):
            body = []
            for l in lines[i + 2:]:
                if l.startswith((".TP", ".SS", ".SH")):
                    break
                body.append(unroff(l))
            entries[section + "." + unroff(lines[i + 1][3:])] = " ".join(body)
    for k in keys:
        name = k["key"]
        body = entries.pop(name, None)
        if body is None:
            fail("parley.conf.5 has no entry for %s" % name)
            continue
        default = ("Default: " + k["default"] + ".") if k["default"] else "Default: empty."
        if default not in body:
            fail("parley.conf.5: %s does not say %r" % (name, default))
        applies = ("Applied by reload (SIGHUP)." if k["applies"] == "reload"
                   else "Applied at restart.")
        if applies not in body:
            fail("parley.conf.5: %s does not say %r" % (name, applies))
        if unroff(k["help"].replace("`", "")) not in body:
            fail("parley.conf.5: %s lacks its help text" % name)
    for name in entries:
        fail("parley.conf.5 has an entry for %s, which is not a key" % name)
    print("parley.conf.5: %d keys" % len(keys))


def command_words(usage):
    words = []
    for w in usage.split():
        if not re.fullmatch(r"[a-z][a-z|-]*", w):
            break
        words.append(w)
    return " ".join(words)


def check_ctl(parleyctl, page, lines):
    r = run([parleyctl, "--help"])
    if r.returncode != 0:
        fail("parleyctl --help: rc %d" % r.returncode)
        return
    # a row starts at column 2: a command (lower case) or an option
    # (the help column is two spaces or more away)
    helped = [command_words(re.split(r"\s{2,}", l.strip())[0])
              for l in r.stdout.splitlines() if re.match(r"  [a-z]", l)]
    options = re.findall(r"^  (-[a-z]|--[a-z-]+)", r.stdout, re.M)
    tags = [unroff(lines[i + 1]) for i, l in enumerate(lines[:-1]) if l == ".TP"]
    documented = [command_words(t) for t in tags if re.match(r"[a-z]", t)]
    if len(helped) < 10:
        fail("parleyctl --help lists only %d commands" % len(helped))
    if helped != documented:
        missing = [c for c in helped if c not in documented]
        fail("parleyctl.8 commands differ from --help: missing %s; page %s" %
             (missing, documented))
    for o in options:
        if not any(t.startswith(o) for t in tags):
            fail("parleyctl.8 does not describe the option %s" % o)
    # every command word runs: none is answered "unknown command"
    for word in sorted({c.split()[0] for c in helped}):
        r = run([parleyctl, "-c", "/nonexistent/parley.conf", word, "--no-such-argument"])
        if "unknown command" in r.stderr:
            fail("parleyctl %s is in --help but not dispatched" % word)
    print("parleyctl.8: %d commands, %d options" % (len(helped), len(options)))


def check_daemon(parleyd, page, lines):
    r = run([parleyd, "--help"])
    if r.returncode != 0:
        fail("parleyd --help: rc %d" % r.returncode)
        return
    longs = re.findall(r"--([a-z][a-z-]*)", r.stdout)
    text = "\n".join(unroff(l) for l in lines)
    if len(longs) < 3:
        fail("parleyd --help lists only %s" % longs)
    for o in longs:
        if "--" + o not in text:
            fail("parleyd.8 does not describe --%s" % o)
    for word in ("SIGHUP", "SIGTERM", "SIGINT", "NOTIFY_SOCKET", "parleyd.lock"):
        if word not in text:
            fail("parleyd.8 does not mention %s" % word)
    print("parleyd.8: options %s" % longs)


def main():
    if len(sys.argv) != 6:
        print(__doc__)
        return 2
    parleyctl, parleyd, ctl_page, conf_page, daemon_page = sys.argv[1:]
    for tool in ("man", "lexgrog"):
        if not shutil.which(tool):
            print("%s is missing: scripts/deps.sh check installs man-db" % tool)
            return 1
    pages = {}
    for page in (ctl_page, conf_page, daemon_page):
        with open(page, encoding="utf-8") as f:
            pages[page] = f.read().splitlines()
        check_formats(page)
        check_sections(page, pages[page], ("NAME", "SYNOPSIS", "DESCRIPTION", "FILES",
                                           "SEE ALSO"))
    check_conf(parleyctl, conf_page, pages[conf_page])
    check_ctl(parleyctl, ctl_page, pages[ctl_page])
    check_sections(ctl_page, pages[ctl_page], ("OPTIONS", "COMMANDS", "EXIT STATUS"))
    check_daemon(parleyd, daemon_page, pages[daemon_page])
    check_sections(daemon_page, pages[daemon_page], ("OPTIONS", "SIGNALS", "ENVIRONMENT",
                                                     "EXIT STATUS"))
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
