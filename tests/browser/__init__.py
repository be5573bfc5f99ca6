"""Browser tests: Playwright driving Debian's Chromium through the pages people click."""
