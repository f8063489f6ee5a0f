"""The Slack adapter: Events API over HTTP or Socket Mode in, the `ChatPlatform` port out (slack-bolt async)."""

PLATFORM = "slack"
