#!/usr/bin/env python3
"""Tests of scripts/check-layers.py on small synthetic trees (run: python3 this_file)."""
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check-layers.py"
MARKER = "<!-- layers: checked by scripts/check-layers.py -->"
TABLE = """\
# Architecture

{marker}
| layer | folders |
|-------|---------|
| 0 | core |
| 1 | crypto, xml |
| 2 | sip |

Text after the table.
"""


class CheckLayers(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        self.doc(TABLE.format(marker=MARKER))
        self.files = {
            "core/log.h": '#include <stdio.h>\n',
            "core/log.c": '#include "core/log.h"\n',
            "crypto/digest.c": '#include "core/log.h"\n#include <openssl/evp.h>\n',
            "xml/xml.c": '#include "core/log.h"\n',
            "sip/msg.c": '#include "core/log.h"\n#include "crypto/digest.h"\n#include "xml/xml.h"\n',
        }
        for name, text in self.files.items():
            self.write(name, text)

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = self.root / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def doc(self, text):
        path = self.root / "docs" / "ARCHITECTURE.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def run_script(self, *args):
        return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=self.root,
                              capture_output=True, text=True)

    def assertViolation(self, result, line):
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn(line, result.stdout.splitlines())

    def test_clean_tree_passes(self):
        r = self.run_script()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip(), "layers: 4 folders, 6 includes checked, no violation")

    def test_options_point_elsewhere(self):
        (self.root / "docs" / "ARCHITECTURE.md").rename(self.root / "layers.md")
        (self.root / "src").rename(self.root / "tree")
        r = self.run_script("--doc", "layers.md", "--src", "tree")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_upward_include_fails(self):
        self.write("core/log.c", '#include "core/log.h"\n\n#include "sip/msg.h"\n')
        r = self.run_script()
        self.assertViolation(r, "src/core/log.c:3: includes sip/msg.h: "
                                "core (layer 0) may not depend on sip (layer 2)")
        self.assertIn("cycle between folders: core -> sip -> core", r.stdout)
        self.assertTrue(r.stdout.splitlines()[-1].startswith("layers: 2 violation(s)"))

    def test_same_layer_include_fails(self):
        self.write("xml/xml.c", '#include "core/log.h"\n#include "crypto/digest.h"\n')
        self.assertViolation(self.run_script(), "src/xml/xml.c:2: includes crypto/digest.h: "
                                                "xml (layer 1) may not depend on crypto (layer 1)")

    def test_folder_in_no_layer(self):
        self.write("media/sdp.c", '#include "core/log.h"\n')
        self.assertViolation(self.run_script(), "folder media is in no layer")

    def test_table_names_missing_folder(self):
        self.doc(TABLE.format(marker=MARKER).replace("| 2 | sip |", "| 2 | sip, tls |"))
        r = self.run_script()
        self.assertEqual(r.returncode, 1)
        self.assertIn("folder tls (layer 2) does not exist", r.stdout)

    def test_missing_marker_is_a_usage_error(self):
        self.doc(TABLE.format(marker="<!-- layers -->"))
        r = self.run_script()
        self.assertEqual(r.returncode, 2)
        self.assertIn("no line", r.stderr)

    def test_missing_table_is_a_usage_error(self):
        self.doc(f"{MARKER}\n\nNo table here.\n")
        self.assertEqual(self.run_script().returncode, 2)

    def test_missing_doc_is_a_usage_error(self):
        r = self.run_script("--doc", "nope.md")
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot read nope.md", r.stderr)

    def test_bad_option_is_a_usage_error(self):
        self.assertEqual(self.run_script("--bogus").returncode, 2)

    def test_system_headers_ignored(self):
        self.write("core/log.c", '#include <stdio.h>\n#include <openssl/evp.h>\n#include <event2/event.h>\n')
        r = self.run_script()
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("5 includes checked", r.stdout)

    def test_parley_header_in_angle_brackets_reported(self):
        # -Isrc makes it resolve: it must not slip past the check
        self.write("core/log.c", '#include <sip/msg.h>\n')
        self.assertViolation(self.run_script(),
                             'src/core/log.c:1: includes <sip/msg.h>: a Parley header in angle '
                             'brackets (write "sip/msg.h")')

    def test_dot_dot_path_reported(self):
        self.write("core/log.c", '#include "core/../sip/msg.h"\n')
        self.assertViolation(self.run_script(), 'src/core/log.c:1: includes core/../sip/msg.h: '
                                                'a path with . or .. (write "folder/file.h")')

    def test_macro_include_reported(self):
        self.write("core/log.c", '#define UP "sip/msg.h"\n#include UP\n')
        self.assertViolation(self.run_script(), "src/core/log.c:2: includes UP: not a quoted path "
                                                "(the check cannot follow a macro)")

    def test_comment_before_path_still_checked(self):
        self.write("core/log.c", '#include /* why not */ "sip/msg.h"\n')
        self.assertViolation(self.run_script(), "src/core/log.c:1: includes sip/msg.h: "
                                                "core (layer 0) may not depend on sip (layer 2)")

    def compile_objects(self, sources):
        """Compiles {"folder/file.c": text} into objects named as Meson names them."""
        out = self.root / "objects"
        out.mkdir(exist_ok=True)
        for name, text in sources.items():
            self.write(name, text)
            folder, file = name.split("/")
            obj = out / f"src_{folder}_{file}.o"
            subprocess.run(["cc", "-c", "-o", str(obj), str(self.root / "src" / name)], check=True)
        return out

    @unittest.skipUnless(shutil.which("cc") and shutil.which("nm"), "needs cc and nm")
    def test_upward_symbol_without_include_reported(self):
        # an extern declaration is a dependency no #include shows
        objects = self.compile_objects({
            "core/log.c": 'extern int sip_parse(void);\nint log_it(void) { return sip_parse(); }\n',
            "sip/msg.c": "int sip_parse(void) { return 1; }\n",
        })
        r = self.run_script("--objects", str(objects))
        self.assertViolation(r, "src/core/log: uses sip_parse (src/sip/msg): "
                                "core (layer 0) may not depend on sip (layer 2)")

    @unittest.skipUnless(shutil.which("cc") and shutil.which("nm"), "needs cc and nm")
    def test_downward_symbols_pass(self):
        objects = self.compile_objects({
            "core/log.c": "int log_it(void) { return 1; }\n",
            "sip/msg.c": 'extern int log_it(void);\nint sip_parse(void) { return log_it(); }\n',
        })
        r = self.run_script("--objects", str(objects))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("1 symbol references checked", r.stdout)

    def test_include_without_folder_reported(self):
        self.write("sip/msg.c", '#include "core/log.h"\n  #  include "msg.h"\n')
        self.assertViolation(self.run_script(),
                             'src/sip/msg.c:2: includes msg.h: no folder part (write "folder/msg.h")')

    def test_include_of_unknown_folder_reported(self):
        self.write("sip/msg.c", '#include "util/list.h"\n')
        self.assertViolation(self.run_script(),
                             "src/sip/msg.c:1: includes util/list.h: there is no folder src/util")

    def test_cycle_between_files_of_a_folder(self):
        self.write("sip/msg.h", '#include "sip/txn.h"\n')
        self.write("sip/txn.c", '#include "sip/txn.h"\n#include "sip/msg_priv.h"\n')
        self.write("sip/msg_priv.h", '#include "sip/msg.h"\n')
        r = self.run_script()
        self.assertViolation(r, "cycle between files of src/sip: msg -> txn -> msg")

    def test_files_of_a_folder_one_way_pass(self):
        self.write("sip/txn.c", '#include "sip/txn.h"\n#include "sip/msg_priv.h"\n')
        self.write("sip/msg_priv.h", '#include "sip/msg.h"\n')
        self.write("sip/msg.c", '#include "sip/msg_priv.h"\n#include "core/log.h"\n')
        r = self.run_script()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
