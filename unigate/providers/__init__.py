"""Provider hosts: URLs, credentials, which dialect a channel speaks. Thin; no translation."""
