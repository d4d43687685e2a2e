"""Context.read: the inputs a Python app reads."""

import unittest

from darkroom_runner.context import Context


def _context() -> Context:
    return Context(request_id="r", attempt=1, endpoint="", state=None, sync_mode=False, send_event=lambda _e: None, upload=lambda *_a: {})


class ReadTest(unittest.TestCase):
    def test_data_uris_in_any_case_are_read_inline(self):
        for uri in ("data:text/plain;base64,aGk=", "DATA:text/plain;base64,aGk=", "Data:text/plain;base64,aGk="):
            self.assertEqual(_context().read(uri), (b"hi", "text/plain"), uri)

    def test_other_schemes_are_refused(self):
        with self.assertRaises(Exception) as caught:
            _context().read("ftp://example.invalid/x")
        self.assertIn("only http(s) and data: URLs", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
