"""Slack edge: Bolt app, slash command, buttons, file validation."""
