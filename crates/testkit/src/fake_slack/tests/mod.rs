//! Tests acting as real clients of the fake Slack.
