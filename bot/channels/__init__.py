"""Channels: adapters translating between Cordée's Outbound/Inbound and mail, console, Slack."""
