"""Contract fakes of vendors' APIs, shared by the tests that talk to them."""
