"""The web playground as a platform: a browser chat through the same intake and workers as Slack and Discord."""
