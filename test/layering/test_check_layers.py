"""layering - the include check itself: it flags what it should and passes what it should.

check_layers.py runs on the source tree as its own test; here each case writes a small tree to a
temporary directory and runs check_layers.check on it, so a checker that stopped seeing
violations cannot pass a tree that has them.
"""

import tempfile
import unittest
from pathlib import Path

import check_layers


class CheckLayers(unittest.TestCase):
    def tree(self, files):
        """A source root holding `files` (relative path -> text)."""
        scratch = tempfile.TemporaryDirectory()
        self.addCleanup(scratch.cleanup)
        root = Path(scratch.name)
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        return root

    def assert_problems(self, files, want):
        """One problem per entry of `want`, in file order, each containing that fragment."""
        got = check_layers.check(self.tree(files))
        self.assertEqual(len(got), len(want), f"got {got}, want {len(want)} matching {want}")
        for line, fragment in zip(got, want):
            self.assertIn(fragment, line)

    def test_lower_layers_may_be_included(self):
        self.assert_problems({
            "include/smtpgate/inet/address.hpp": "#include <string>\n",
            "include/smtpgate/config/config.hpp": '#include "smtpgate/inet/address.hpp"\n',
            "src/config/loader.cpp": '#include "smtpgate/config/config.hpp"\n',
            "src/main.cpp": '#include "smtpgate/net/server.hpp"\n',
        }, [])

    def test_config_including_policy_is_named_with_file_and_line(self):
        self.assert_problems({
            "src/config/field.cpp": '#include <string>\n\n#include "smtpgate/policy/address.hpp"\n',
        }, ['src/config/field.cpp:3: "smtpgate/policy/address.hpp": config/ includes policy/'])

    def test_policy_including_state_is_caught(self):
        self.assert_problems({
            "include/smtpgate/policy/checks/access.hpp": '#include "smtpgate/state/store.hpp"\n',
        }, ['include/smtpgate/policy/checks/access.hpp:1: "smtpgate/state/store.hpp": policy/ '
            "includes state/"])

    def test_a_private_header_belongs_to_its_folder(self):
        self.assert_problems({
            "src/net/helpers.hpp": "#pragma once\n",
            "src/config/field.hpp": "#pragma once\n",
            "src/config/loader.cpp": '#include "field.hpp"\n',
            "src/session/engine.cpp": '#include "../net/helpers.hpp"\n',
        }, ['src/session/engine.cpp:1: "../net/helpers.hpp": session/ includes net/'])

    def test_the_core_layers_do_not_include_asio_or_openssl(self):
        self.assert_problems({
            "src/session/engine.cpp": "#include <boost/asio/post.hpp>\n",
            "src/smtp/reply.cpp": "#include <openssl/ssl.h>\n",
            "src/net/server.cpp": "#include <boost/asio/post.hpp>\n",
            "src/ops/log.cpp": "#include <fmt/format.h>\n",
        }, ["src/session/engine.cpp:1:", "src/smtp/reply.cpp:1:"])

    def test_a_new_folder_needs_a_place(self):
        self.assert_problems({
            "src/dns/lookup.cpp": "#include <string>\n",
        }, ["src/dns/lookup.cpp:1: dns/ is not a layer"])

    def test_an_unresolvable_quoted_include_is_reported(self):
        self.assert_problems({
            "src/smtp/reply.cpp": '#include "missing.hpp"\n',
        }, ['src/smtp/reply.cpp:1: "missing.hpp": not found'])


if __name__ == "__main__":
    unittest.main()
